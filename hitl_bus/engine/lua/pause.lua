-- ARGV 6 Paused state JSON, 7 its id, 8 attempt, 9 pause key, 10 deadline ms (0 none),
-- 11 keyset JSON, 12 suspended ("1"/"0"), 13 schema JSON ("" none), 14 assignees (JSON
-- list, "" none), then field/JSON pairs for the values hash.
local cur, attempt = current('attempt')
if not cur then return {0, ''} end
if cur['id'] == ARGV[7] then return {1, ''} end
if superseded(ARGV[8], attempt) then return {6, cur['type']} end
if cur['type'] ~= 'RUNNING' then return {2, cur['type']} end
if #ARGV > 14 then
  redis.call('HSET', KEYS[4], unpack(ARGV, 15))
  local fields = {}
  for i = 15, #ARGV, 2 do fields[#fields + 1] = ARGV[i] end
  stamp_values(fields)
end
local fields = {'pause_key', ARGV[9], 'pause_deadline', ARGV[10], 'pause_keyset', ARGV[11],
                'suspended', ARGV[12], 'pause_schema', ARGV[13], 'paused_in', ARGV[8]}
if ARGV[14] ~= '' then
  fields[#fields + 1] = 'pause_assignees'
  fields[#fields + 1] = ARGV[14]
else
  redis.call('HDEL', RUN, 'pause_assignees')
end
write_state(ARGV[6], fields)
return {1, cur['type']}
