-- Hands back the jobs of consumers whose lease lapsed, at most CHUNK per
-- call: each gets a 'lost' attempt and is queued again with attempt + 1,
-- or dead-lettered once its attempts reach its maximum. Then drops a few
-- running counts left at zero (a cursor in TIDY walks them).
-- KEYS: the fixed ones.
-- ARGV: base, now, the default max attempts (where the queue's policy has
-- none).
-- A job whose cancellation was asked for ends cancelled instead.
-- Returns {requeued, {dead ids...}, 1 if there is more to reap, {cancelled
-- ids...}}.
local now = tonumber(ARGV[2])
local _, _, default_max = policy(0, 0, tonumber(ARGV[3]))
local requeued, dead, budget, more, cancelled = 0, {}, CHUNK, 0, {}
for _, c in ipairs(redis.call('SMEMBERS', CONSUMERS)) do
  if not lease_ok(c) then
    if budget == 0 then
      more = 1
      break
    end
    local held = held_key(c)
    local got = redis.call('HRANDFIELD', held, budget, 'WITHVALUES')
    local ids = {}
    for i = 1, #got, 2 do ids[#ids + 1] = got[i] end
    if #ids > 0 then bulk('HDEL', {held}, ids) end
    budget = math.max(0, budget - #ids)
    local h0 = seq_take(#ids)
    for n, id in ipairs(ids) do
      local jkey = jk(id)
      local f = redis.call('HMGET', jkey, 'p', 't', 'sc', 'a', 'm', 'due', 'j', 'x')
      local p = f[1]
      if p then
        local t = f[2] or p
        if held_counted(got[2 * n]) then stop(t) end
        local a = tonumber(f[4]) or 1
        local lost = attempt_json(a, c, held_at(got[2 * n]), now, 'lost')
        local max = tonumber(f[5]) or default_max
        if f[8] then
          cancel_held(jkey, id, now, 'h' .. (h0 + n), lost)
          cancelled[#cancelled + 1] = id
        elseif a >= max then
          bury(jkey, id, string.format(
            'lost %d of %d attempts: the lease of worker %s lapsed while it held the job during the last one',
            a, max, c), now, 'h' .. (h0 + n), lost)
          dead[#dead + 1] = id
        else
          redis.call('HSET', jkey, 'a', a + 1, 'h' .. (h0 + n), lost)
          ready_add(id, p, t, tonumber(f[3]), a + 1, f[6] or '-', f[7], true)
          requeued = requeued + 1
        end
      end
    end
    if redis.call('EXISTS', held) == 0 then
      redis.call('DEL', handoff_key(c), cancels_key(c))
      redis.call('ZREM', WAITING, c)
      redis.call('HDEL', WANTS, c)
      redis.call('SREM', CONSUMERS, c)
    else
      more = 1
      break
    end
  end
end
buried_flush()
done_flush()
local back = stopped_flush()
if ready_flush() > 0 then back = true end
if back then handoff(now) end

local cur = redis.call('HGET', TIDY, 'run') or '0'
local scan = redis.call('HSCAN', RUN, cur, 'COUNT', 100)
local zero = {}
for i = 1, #scan[2], 2 do
  if tonumber(scan[2][i + 1]) == 0 then zero[#zero + 1] = scan[2][i] end
end
if #zero > 0 then bulk('HDEL', {RUN}, zero) end
redis.call('HSET', TIDY, 'run', scan[1])
return {requeued, dead, more, cancelled}
