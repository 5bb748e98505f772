-- ARGV 6 pause key expected ("" whichever pause the run is in), 7 response JSON (the input;
-- {} when none was given), 8 "1" when the caller gave an input, 9 Running JSON, 10 Resuming
-- JSON (for a suspended run) and 11 Failed JSON (deadline passed), each "" until the
-- script asks for it, 12 request id, 13 actor ("" none: stamped as the response's sender
-- and carried by the control entry), 14 "1" when the run's deployment queue is given
-- (KEYS[12] on standalone Redis; in Cluster the caller queues), then 15.. the digests of
-- the pause schemas the input was checked against and passed. The pause's own schema must
-- be among them, else nothing is written and the schema is answered with its digest, for
-- the caller to check the input against it. A suspended run without its queue and
-- Resuming state, or a pause past its deadline without the Failed state, is answered the
-- same way: nothing written, the caller asks again with them.
-- fakeredis (tests only) has no redis.sha1hex: there the schema is its own digest.
local cur, resume_id, outcome_before, key, schema, suspended, deadline, keyset, assignees =
  current('resume_id', 'resume_outcome', 'pause_key', 'pause_schema', 'suspended',
          'pause_deadline', 'pause_keyset', 'pause_assignees')
if resume_id == ARGV[12] then return {tonumber(outcome_before), 'PAUSED', '0'} end
if not cur then return {0, ''} end
if cur['type'] ~= 'PAUSED' then return {2, cur['type']} end
key = key or ''
if ARGV[6] ~= '' and ARGV[6] ~= key then return {4, cur['type']} end
local response = 'null'
if schema and schema ~= '' then
  local digest = schema
  if redis.sha1hex then digest = redis.sha1hex(schema) end
  local checked = false
  for i = 15, #ARGV do
    if ARGV[i] == digest then checked = true; break end
  end
  if not checked then return {8, cur['type'], '', {schema, digest}} end
  response = ARGV[7]
elseif ARGV[8] == '1' then
  return {9, cur['type']}
end
suspended = suspended == '1'
if suspended and (ARGV[14] ~= '1' or ARGV[10] == '') then
  return {15, cur['type'], redis.call('HGET', RUN, 'deployment') or ''}
end
deadline = tonumber(deadline or '0') or 0
had_assignees, had_deadline = assignees ~= false, deadline > 0
if deadline > 0 and deadline <= now_ms() then  -- expired(), from the fields read above
  if ARGV[11] == '' then return {16, cur['type']} end
  write_state(ARGV[11], {'pause_deadline', '0'})
  redis.call('XADD', CONTROL, 'MAXLEN', '~', 100, '*', 'type', 'expired', 'pause_key', key)
  return {3, cur['type'], key}
end
local field = key .. '-response'
if keyset then
  local ok, decoded = pcall(cjson.decode, keyset)
  if ok and type(decoded) == 'table' and type(decoded['response']) == 'string' then
    field = decoded['response']
  end
end
redis.call('HSET', KEYS[4], field, response)
stamp_values({field}, ARGV[13])
local outcome = 1
local next_state = ARGV[9]
if suspended then outcome = 5; next_state = ARGV[10] end
write_state(next_state, {'pause_deadline', '0', 'resumed_key', key, 'resume_id', ARGV[12],
                         'resume_outcome', tostring(outcome)})
redis.call('XADD', CONTROL, 'MAXLEN', '~', 100, '*', 'type', 'resumed', 'pause_key', key,
           'response', response, 'actor', ARGV[13])
local queued = '0'
if suspended then queued = enqueue() end
return {outcome, cur['type'], queued}
