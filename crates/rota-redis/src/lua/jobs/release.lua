-- Gives held jobs back at once, fenced by the lease; or, with mode
-- 'close', gives back what the consumer holds (at most CHUNK per call) and,
-- once it holds nothing, drops the consumer.
-- KEYS: the fixed ones, then held:<c>, lease:<c>, handoff:<c>, then the job
-- key of each id given.
-- ARGV: base, consumer, now, mode (attempted|unattempted|close), ids...
-- Returns -1 if the lease lapsed; else, for close, how many jobs are still
-- held (call again until 0), and otherwise how many were given back.
local c, now, mode = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local HELD, LEASE, HANDOFF = KEYS[FIXED + 1], KEYS[FIXED + 2], KEYS[FIXED + 3]
if mode ~= 'close' and not lease_ok(c) then return -1 end
local ids, at, keys = {}, {}, {}
if mode == 'close' then
  -- A closing consumer waits for nothing more.
  redis.call('ZREM', WAITING, c)
  redis.call('HDEL', WANTS, c)
  local got = redis.call('HRANDFIELD', HELD, CHUNK, 'WITHVALUES')
  for i = 1, #got, 2 do
    ids[#ids + 1] = got[i]
    at[#at + 1] = tonumber(got[i + 1])
    keys[#keys + 1] = jk(got[i])
  end
else
  local given = {}
  for i = 5, #ARGV do given[#given + 1] = ARGV[i] end
  local since = bulk('HMGET', {HELD}, given)
  for i = 1, #given do
    if since[i] then
      ids[#ids + 1] = given[i]
      at[#at + 1] = tonumber(since[i])
      keys[#keys + 1] = KEYS[FIXED + 3 + i]
    end
  end
end
if #ids > 0 then bulk('HDEL', {HELD}, ids) end
local h0 = seq_take(#ids)
for n, id in ipairs(ids) do
  local f = redis.call('HMGET', keys[n], 'p', 't', 'sc', 'a', 'due', 'j')
  local p = f[1]
  if p then
    local t = f[2] or p
    stop(t)
    local a = tonumber(f[4]) or 1
    if mode == 'attempted' then
      redis.call('HSET', keys[n], 'a', a + 1, 'h' .. (h0 + n),
        attempt_json(a, c, at[n], now, 'cancelled'))
      a = a + 1
    end
    ready_add(id, p, t, tonumber(f[3]), a, f[5] or '-', f[6], true)
  end
end
local back = stopped_flush()
if ready_flush() > 0 then back = true end
if back then handoff(now) end
if mode ~= 'close' then return #ids end
local left = redis.call('HLEN', HELD)
if left == 0 then
  redis.call('DEL', HELD, LEASE, HANDOFF)
  redis.call('SREM', CONSUMERS, c)
end
return left
