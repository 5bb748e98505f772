-- ARGV 6 Running state JSON, 7 its id, 8 worker id ("" in process), 9 "1": also answer
-- where the execution starts from (the run's hash as it now stands, its control stream's
-- newest id, after which a cancel counts, and its stored task results), all read in this
-- same step, so a worker starts a run in one round trip.
local cur = current()
if not cur then return {0, ''} end
local function reads()
  if ARGV[9] ~= '1' then return {} end
  return starting_point()
end
if cur['id'] == ARGV[7] then
  return {1, '', redis.call('HGET', RUN, 'attempt') or '0', reads()}
end
if not startable(cur) then return {2, cur['type']} end
local attempt = begin_execution(ARGV[6], ARGV[8])
return {1, cur['type'], attempt, reads()}
