-- Gives held jobs back at once, fenced by the lease; or, with mode
-- 'close', gives back what the consumer holds (at most CHUNK per call) and,
-- once it holds nothing, drops the consumer.
-- KEYS: the fixed ones, then held:<c>, lease:<c>, handoff:<c>, then the job
-- key of each id given.
-- ARGV: base, consumer, now, mode (attempted|unattempted|close), ids...
-- A job whose cancellation was asked for ends cancelled instead of going
-- back (with a 'cancelled' attempt if attempted).
-- Returns {n, {cancelled ids...}}: n is -1 if the lease lapsed; else, for
-- close, how many jobs are still held (call again until 0), and otherwise
-- how many were given back or cancelled.
local c, now, mode = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local HELD, LEASE, HANDOFF = KEYS[FIXED + 1], KEYS[FIXED + 2], KEYS[FIXED + 3]
if mode ~= 'close' and not lease_ok(c) then return {-1, {}} end
local ids, at, keys, counted = {}, {}, {}, {}
if mode == 'close' then
  -- A closing consumer waits for nothing more.
  redis.call('ZREM', WAITING, c)
  redis.call('HDEL', WANTS, c)
  local got = redis.call('HRANDFIELD', HELD, CHUNK, 'WITHVALUES')
  for i = 1, #got, 2 do
    ids[#ids + 1] = got[i]
    at[#at + 1] = held_at(got[i + 1])
    counted[#counted + 1] = held_counted(got[i + 1])
    keys[#keys + 1] = jk(got[i])
  end
else
  local given = {}
  for i = 5, #ARGV do given[#given + 1] = ARGV[i] end
  local since = bulk('HMGET', {HELD}, given)
  for i = 1, #given do
    if since[i] then
      ids[#ids + 1] = given[i]
      at[#at + 1] = held_at(since[i])
      counted[#counted + 1] = held_counted(since[i])
      keys[#keys + 1] = KEYS[FIXED + 3 + i]
    end
  end
end
if #ids > 0 then bulk('HDEL', {HELD}, ids) end
local h0 = seq_take(#ids)
local cancelled = {}
for n, id in ipairs(ids) do
  local f = redis.call('HMGET', keys[n], 'p', 't', 'sc', 'a', 'due', 'j', 'x')
  local p = f[1]
  if p then
    local t = f[2] or p
    if counted[n] then stop(t) end
    local a = tonumber(f[4]) or 1
    if f[7] then
      if mode == 'attempted' then
        cancel_held(keys[n], id, now, 'h' .. (h0 + n), attempt_json(a, c, at[n], now, 'cancelled'))
      else
        cancel_held(keys[n], id, now)
      end
      cancelled[#cancelled + 1] = id
    else
      if mode == 'attempted' then
        redis.call('HSET', keys[n], 'a', a + 1, 'h' .. (h0 + n),
          attempt_json(a, c, at[n], now, 'cancelled'))
        a = a + 1
      end
      ready_add(id, p, t, tonumber(f[3]), a, f[5] or '-', f[6], true)
    end
  end
end
done_flush()
local back = stopped_flush()
if ready_flush() > 0 then back = true end
if back then handoff(now) end
if mode ~= 'close' then return {#ids, cancelled} end
local left = redis.call('HLEN', HELD)
if left == 0 then
  redis.call('DEL', HELD, LEASE, HANDOFF, cancels_key(c))
  redis.call('SREM', CONSUMERS, c)
end
return {left, cancelled}
