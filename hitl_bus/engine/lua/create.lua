-- ARGV 6 the first state's JSON, 7 created (ms), then field/value pairs of the run hash.
-- A run that exists already is this very call's, retried after a lost reply: nothing more.
if redis.call('EXISTS', RUN) == 1 then return {1, ''} end
redis.call('HSET', RUN, unpack(ARGV, 8))
write_state(ARGV[6], {})
if INDEX ~= '' then redis.call('ZADD', INDEX .. ':runs', ARGV[7], run_id) end
return {1, '', enqueue()}
