-- ARGV 6 Cancelling JSON, 7 Cancelled JSON. A run with a process goes to Cancelling and
-- its process is told on the control stream; a queued or suspended run has none, so it
-- is Cancelled at once.
local cur = current()
if not cur then return {0, ''} end
local t = cur['type']
if TERMINAL[t] then return {2, t} end
if t == 'CANCELLING' then return {1, t} end
local suspended = t == 'PAUSED' and redis.call('HGET', RUN, 'suspended') == '1'
if t == 'SCHEDULED' or suspended then
  write_state(ARGV[7], {'pause_deadline', '0'})
  return {5, t}
end
write_state(ARGV[6], {'pause_deadline', '0'})
redis.call('XADD', CONTROL, 'MAXLEN', '~', 100, '*', 'type', 'cancel')
return {1, t}
