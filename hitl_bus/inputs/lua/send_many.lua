-- Many inputs to one owner in one call, with send.lua's checks and writes per input; every
-- check runs before the first write, so a refused input leaves the whole batch unstored.
-- KEYS: target marker, prefix set, key set, receivers hash, new-prefix announcements,
--       input index; then ARGV[6] event streams; then ARGV[7] input streams; then, when
--       ARGV[8] > 0, the sender inbox's marker (and its prefix set and key set when due,
--       as for send.lua).
-- ARGV: sender, target ttl ms (0: a run), events maxlen, ts ms, owner id, number of event
--       streams, number of input streams, sender inbox ttl ms (0: none), pid, host; then
--       five per input: key, prefix, number of its input stream (from 1), data, digest of
--       the receiver schema it was checked against ('': none).
-- Replies {0} (no such owner), {3, n, schema, digest} (input n, from 0, was checked against
-- another schema or none: nothing written), or {1, entry id or '' (key already there)...}.
-- Only what each input needs on its own is done per input (its entry and its two
-- events); the key set, the index and the prefix set take one command per batch (in
-- slices, as Lua's unpack has a limit).
local unpack = unpack or table.unpack
local function each_slice(items, per_slice, call)
  for from = 1, #items, per_slice do
    call(unpack(items, from, math.min(from + per_slice - 1, #items)))
  end
end
local nevents, nstreams = tonumber(ARGV[6]), tonumber(ARGV[7])
local renew = tonumber(ARGV[8])
if renew > 0 then
  local first = 7 + nevents + nstreams
  if #KEYS > first or redis.call('EXISTS', KEYS[first]) == 0 then
    redis.call('HSET', KEYS[first], 'pid', ARGV[9], 'host', ARGV[10])
    for i = first, #KEYS do redis.call('PEXPIRE', KEYS[i], renew) end
  end
end
local left = redis.call('PTTL', KEYS[1])
if left == -2 then return {0} end
local n = (#ARGV - 10) / 5
local given = {}
for i = 0, n - 1 do given[i + 1] = ARGV[11 + 5 * i] end
local there = {}
each_slice(given, 1000, function(...)
  for _, flag in ipairs(redis.call('SMISMEMBER', KEYS[3], ...)) do there[#there + 1] = flag end
end)
local ttl = tonumber(ARGV[2])
local inbox = ttl > 0
local new, seen = {}, {}
local schemas, digests = {}, {}
for i = 0, n - 1 do
  local a = 10 + 5 * i
  local key, prefix = ARGV[a + 1], ARGV[a + 2]
  if there[i + 1] == 0 and not seen[key] then
    seen[key], new[i] = true, true
    if not inbox then  -- only a run has receivers
      if digests[prefix] == nil then
        local schema = redis.call('HGET', KEYS[4], prefix)
        local digest = schema
        if schema and redis.sha1hex then digest = redis.sha1hex(schema) end
        schemas[prefix], digests[prefix] = schema, digest
      end
      local digest = digests[prefix]
      if digest and digest ~= ARGV[a + 5] then return {3, i, schemas[prefix], digest} end
    end
  end
end
if not inbox and left > 0 then
  ttl = left  -- a finished run's keys expire, and what this send made with them
end
local reply, streams, stored, index = {1}, {}, {}, {}
local prefixes, prefix_seen = {}, {}
local sender, maxlen = ARGV[1], ARGV[3]
local sender_json = cjson.encode(sender)
for i = 0, n - 1 do
  local a = 10 + 5 * i
  if new[i] then
    local key, prefix = ARGV[a + 1], ARGV[a + 2]
    local stream = KEYS[6 + nevents + tonumber(ARGV[a + 3])]
    local id = redis.call('XADD', stream, '*', 'key', key, 'sender', sender, 'data', ARGV[a + 4])
    stored[#stored + 1] = key
    index[#index + 1] = key
    index[#index + 1] = id .. ' ' .. prefix
    if not prefix_seen[prefix] then
      prefix_seen[prefix] = true
      prefixes[#prefixes + 1] = prefix
    end
    if nevents > 0 then
      local event = '{"key":"' .. key .. '","key_prefix":"' .. prefix .. '","sender":'
                    .. sender_json .. '}'
      for e = 7, 6 + nevents do
        redis.call('XADD', KEYS[e], 'MAXLEN', '~', maxlen, '*',
                   'type', 'input.received', 'run_id', ARGV[5], 'ts', ARGV[4], 'data', event)
      end
    end
    streams[stream] = true
    reply[#reply + 1] = id
  else
    reply[#reply + 1] = ''
  end
end
if #stored > 0 then
  each_slice(stored, 1000, function(...) redis.call('SADD', KEYS[3], ...) end)
  each_slice(index, 1000, function(...) redis.call('HSET', KEYS[6], ...) end)
  for _, prefix in ipairs(prefixes) do
    if redis.call('SADD', KEYS[2], prefix) == 1 and inbox then
      redis.call('XADD', KEYS[5], 'MAXLEN', '~', 100, '*', 'prefix', prefix)
      redis.call('PEXPIRE', KEYS[5], ttl)
    end
  end
  if ttl > 0 then
    for _, i in ipairs({1, 2, 3, 6}) do redis.call('PEXPIRE', KEYS[i], ttl) end
    for stream in pairs(streams) do redis.call('PEXPIRE', stream, ttl) end
  end
end
return reply
