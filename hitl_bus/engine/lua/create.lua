-- ARGV 6 the first state's JSON, 7 created (ms), 8 deployment name and 9 the digest of its
-- record as the caller read it ("" no check; KEYS[13] the deployments hash), then
-- field/value pairs of the run hash. A record changed (or gone) since the caller read it
-- stores nothing and answers the record as it is now and its digest, so the caller checks
-- again. (fakeredis, tests only, has no redis.sha1hex: there a record is its own digest.)
-- A run that exists already is this very call's, retried after a lost reply: nothing more.
if redis.call('EXISTS', RUN) == 1 then return {1, ''} end
if ARGV[9] ~= '' then
  local record = redis.call('HGET', KEYS[13], ARGV[8])
  if not record then return {7, '', '', {}} end
  local digest = record
  if redis.sha1hex then digest = redis.sha1hex(record) end
  if digest ~= ARGV[9] then return {7, '', '', {record, digest}} end
end
read_before = true  -- a new run: no pause of its own to clear
write_state(ARGV[6], {unpack(ARGV, 10)})  -- its fields and first state in one HSET
if INDEX ~= '' then redis.call('ZADD', INDEX .. ':runs', ARGV[7], run_id) end
return {1, '', enqueue()}
