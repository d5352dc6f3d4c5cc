-- Hands back the jobs of consumers whose lease lapsed, at most CHUNK per
-- call: each gets a 'lost' attempt and is queued again with attempt + 1,
-- or dead-lettered once its attempts reach its maximum. Then tidies a few
-- entries of the registries (running counts at zero, lanes left empty).
-- KEYS: the fixed ones.
-- ARGV: base, now, default max attempts.
-- Returns {requeued, {dead ids...}, 1 if there is more to reap}.
local now, default_max = tonumber(ARGV[2]), tonumber(ARGV[3])
local requeued, dead, budget, more = 0, {}, CHUNK, 0
for _, c in ipairs(redis.call('SMEMBERS', CONSUMERS)) do
  if not lease_ok(c) then
    if budget == 0 then
      more = 1
      break
    end
    local held = held_key(c)
    local got = redis.call('ZRANGE', held, 0, budget - 1, 'WITHSCORES')
    local ids = {}
    for i = 1, #got, 2 do ids[#ids + 1] = got[i] end
    if #ids > 0 then bulk('ZREM', {held}, ids) end
    budget = budget - #ids
    local h0 = seq_take(#ids)
    for n, id in ipairs(ids) do
      local jkey = jk(id)
      local f = redis.call('HMGET', jkey, 'p', 't', 'pr', 'q', 'a', 'm')
      if f[1] then
        stop(f[2])
        local a = tonumber(f[5]) or 1
        local lost = attempt_json(a, c, tonumber(got[2 * n]), now, 'lost')
        local max = tonumber(f[6]) or default_max
        if a >= max then
          bury(jkey, id, string.format(
            'lost %d of %d attempts: the lease of worker %s lapsed while it held the job during the last one',
            a, max, c), now, {'h' .. int(h0 + n), lost})
          dead[#dead + 1] = id
        else
          redis.call('HSET', jkey, 'a', a + 1, 'h' .. int(h0 + n), lost)
          ready_add(id, f[1], f[2], score(f[3], f[4]))
          requeued = requeued + 1
        end
      end
    end
    if redis.call('EXISTS', held) == 0 then
      redis.call('DEL', handoff_key(c))
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
local back = stopped_flush()
if ready_flush() > 0 then back = true end
if back then handoff(now) end

-- Tidying, a few entries per reap: a cursor per registry in TIDY.
local cur = redis.call('HGET', TIDY, 'run') or '0'
local scan = redis.call('HSCAN', RUN, cur, 'COUNT', 100)
local zero = {}
for i = 1, #scan[2], 2 do
  if tonumber(scan[2][i + 1]) == 0 then zero[#zero + 1] = scan[2][i] end
end
if #zero > 0 then bulk('HDEL', {RUN}, zero) end
redis.call('HSET', TIDY, 'run', scan[1])
cur = redis.call('HGET', TIDY, 'lanes') or '0'
scan = redis.call('SSCAN', LANES, cur, 'COUNT', 100)
local empty = {}
for _, name in ipairs(scan[2]) do
  local p, t = string.match(name, '^([^:]+):(.+)$')
  if not p then p, t = name, name end
  if redis.call('EXISTS', lane_key(p, t)) == 0 then empty[#empty + 1] = name end
end
if #empty > 0 then bulk('SREM', {LANES}, empty) end
redis.call('HSET', TIDY, 'lanes', scan[1])
return {requeued, dead, more}
