-- Hands back the jobs of consumers whose lease lapsed.
-- ARGV: now, default max attempts
-- Returns {requeued, {dead ids...}}
local now, default_max = tonumber(ARGV[1]), tonumber(ARGV[2])
local requeued, dead = 0, {}
for _, c in ipairs(redis.call('SMEMBERS', k('consumers'))) do
  if not lease_ok(c) then
    local held = k('held:' .. c)
    for _, id in ipairs(redis.call('SMEMBERS', held)) do
      stop_running(id)
      local f = redis.call('HMGET', jk(id), 'p', 'pr', 'q', 'a', 'ca', 'm')
      local a = tonumber(f[4])
      record_attempt(id, attempt_json(a, c, tonumber(f[5]) or now, now, 'lost'))
      local max = tonumber(f[6]) or default_max
      if a >= max then
        bury(id, string.format(
          'lost %d of %d attempts: the lease of worker %s lapsed while it held the job during the last one',
          a, max, c), now)
        dead[#dead + 1] = id
      else
        redis.call('HSET', jk(id), 'a', a + 1)
        push_ready(id, f[1], f[2], f[3])
        requeued = requeued + 1
      end
    end
    redis.call('DEL', held)
    redis.call('SREM', k('consumers'), c)
  end
end
wake(requeued)
return {requeued, dead}
