-- KEYS: target marker, stream, prefix set, key set, receivers hash (of a run; an inbox has
--       none), new-prefix announcements (of an inbox; a run has its event stream), input
--       index (key -> entry id and prefix: Prefect's read/filter/delete by key); then
--       ARGV[9] event streams; then, when ARGV[10] > 0, the sender inbox's marker, and its
--       prefix set and key set when it is due for renewal.
-- ARGV: key, sender, data, prefix, target ttl ms (0: none), events maxlen, ts ms,
--       owner id, number of event streams, sender inbox ttl ms (0: none), digest of the
--       receiver schema the input was checked against ('': none), pid, host (''
--       when not renewed), '1' when the target is a person's mailbox (made here when
--       missing; its streams are trimmed to ARGV[15] entries and expire ARGV[5] ms after
--       their last input, 0: kept), its streams' MAXLEN, '1' when this process has
--       recorded the key prefix for this target before (its prefix set is not written).
-- The sender's inbox is renewed when the process says it is due (all three keys given),
-- else only remade when it is gone (a flushed or restarted Redis): one EXISTS.
-- A key already accepted answers "already there" before the schema is looked at: a retry
-- of a send that was stored must not be refused because the schema changed since. The
-- key is added first (SADD tells whether it was there) and taken out again when the
-- schema check sends the input back: the script is atomic, so no one sees it meanwhile.
-- The event's JSON is put together here: keys and prefixes are lowercase letters, digits
-- and dashes, so only the sender needs encoding.
-- fakeredis (tests only) has no redis.sha1hex: there the schema is its own digest.
local nevents = tonumber(ARGV[9])
local renew = tonumber(ARGV[10])
if renew > 0 then
  local first = 8 + nevents
  if #KEYS > first or redis.call('EXISTS', KEYS[first]) == 0 then
    redis.call('HSET', KEYS[first], 'pid', ARGV[12], 'host', ARGV[13])
    for i = first, #KEYS do redis.call('PEXPIRE', KEYS[i], renew) end
  end
end
local person = ARGV[14] == '1'
local left = redis.call('PTTL', KEYS[1])
if left == -2 then
  if not person then return {0, ''} end
  redis.call('HSET', KEYS[1], 'owner', ARGV[8])
end
if redis.call('SADD', KEYS[4], ARGV[1]) == 0 then return {2, ''} end
local ttl = tonumber(ARGV[5])
if ttl == 0 and not person then  -- only a run has receivers
  local schema = redis.call('HGET', KEYS[5], ARGV[4])
  if schema then
    local digest = schema
    if redis.sha1hex then digest = redis.sha1hex(schema) end
    if digest ~= ARGV[11] then
      redis.call('SREM', KEYS[4], ARGV[1])
      return {3, schema, digest}
    end
  end
end
local id
if person then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[15], '*',
                  'key', ARGV[1], 'sender', ARGV[2], 'data', ARGV[3])
else
  id = redis.call('XADD', KEYS[2], '*', 'key', ARGV[1], 'sender', ARGV[2], 'data', ARGV[3])
end
redis.call('HSET', KEYS[7], ARGV[1], id .. ' ' .. ARGV[4])
local new_prefix = false
if ARGV[16] ~= '1' then new_prefix = redis.call('SADD', KEYS[3], ARGV[4]) == 1 end
if new_prefix and (ttl > 0 or person) then  -- an inbox's first input of this type: say so
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', 100, '*', 'prefix', ARGV[4])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[6], ttl) end
end
if ttl > 0 then
  -- An inbox or mailbox lives ttl after its last input. Every send renews these five keys
  -- together, so the stream's own time left stands for all five: renewed within the last
  -- tenth of the ttl, they are left as they are.
  if new_prefix or left < 0 or redis.call('PTTL', KEYS[2]) < ttl * 0.9 then
    for _, i in ipairs({1, 2, 3, 4, 7}) do redis.call('PEXPIRE', KEYS[i], ttl) end
  end
elseif not person and left > 0 then
  -- a finished run's keys expire, and what this send made with them
  for _, i in ipairs({1, 2, 3, 4, 7}) do redis.call('PEXPIRE', KEYS[i], left) end
end
if nevents > 0 then
  local event = '{"key":"' .. ARGV[1] .. '","key_prefix":"' .. ARGV[4] .. '","sender":'
                .. cjson.encode(ARGV[2]) .. '}'
  for i = 8, 7 + nevents do
    redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[6], '*',
               'type', 'input.received', 'run_id', ARGV[8], 'ts', ARGV[7], 'data', event)
  end
end
return {1, id}
