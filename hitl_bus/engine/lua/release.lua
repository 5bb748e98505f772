-- ARGV 6 worker that held the execution ("" any), 7 attempt ("" any), 8 count a crash
-- ("1"/"0"), 9 retries, 10 Suspended template JSON, 11 Scheduled JSON (re-run),
-- 12 Resuming JSON (re-run of a run that paused), 13 Crashed JSON, 14 Cancelled JSON
local cur = current()
if not cur then return {0, ''} end
local t = cur['type']
if TERMINAL[t] then return {10, t} end
if t == 'SCHEDULED' then return {11, t, enqueue()} end
if ARGV[6] ~= '' and (redis.call('HGET', RUN, 'worker') or '') ~= ARGV[6] then
  return {6, t}
end
if superseded(ARGV[7]) then return {6, t} end
if t == 'PAUSED' then
  if redis.call('HGET', RUN, 'suspended') == '1' then return {10, t} end
  local s = cjson.decode(ARGV[10])
  s['state_details'] = cjson.decode(cur['json'])['state_details']
  s['state_details']['pause_reschedule'] = true
  write_state(cjson.encode(s), {'suspended', '1'})
  return {12, t}
end
if t == 'CANCELLING' then
  write_state(ARGV[14], {'pause_deadline', '0'})
  return {13, t}
end
local attempt = redis.call('HGET', RUN, 'attempt') or '0'
local paused = redis.call('HGET', RUN, 'paused_in') == attempt
if ARGV[8] == '1' and not paused then
  if redis.call('HINCRBY', RUN, 'crashes', 1) > tonumber(ARGV[9]) then
    write_state(ARGV[13], {'pause_deadline', '0'})
    return {14, t}
  end
end
if paused then write_state(ARGV[12], {'pause_deadline', '0'})
else write_state(ARGV[11], {'pause_deadline', '0'}) end
return {11, t, enqueue()}
