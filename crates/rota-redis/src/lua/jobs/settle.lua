-- Settles attempts, fenced by the lease.
-- ARGV: consumer, now, max finished, max age ms; then 5 per item:
--   id, attempt JSON, kind (finish|retry|dead), value (state | due ms | reason), result JSON or ''
-- Returns -1 if the lease lapsed, else the number settled.
local consumer, now, keep, age = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if not lease_ok(consumer) then return -1 end
local held = k('held:' .. consumer)
local n, woken = 0, 0
for i = 5, #ARGV, 5 do
  local id, att, kind, value, result = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if redis.call('SREM', held, id) == 1 then
    n = n + 1
    stop_running(id)
    record_attempt(id, att)
    if kind == 'finish' then
      if result ~= '' then redis.call('HSET', jk(id), 'r', result) end
      local reason = ''
      if value ~= 'succeeded' then reason = cjson.decode(att).outcome.error or '' end
      finish(id, value, reason, now)
    elseif kind == 'retry' then
      local f = redis.call('HMGET', jk(id), 'p', 'pr', 'a')
      local seq = redis.call('INCR', k('seq'))
      redis.call('HSET', jk(id), 'a', tonumber(f[3]) + 1, 'q', seq)
      local due = tonumber(value)
      if due > now then
        schedule(id, f[1], due)
      else
        redis.call('HSET', jk(id), 'due', now)
        push_ready(id, f[1], f[2], seq)
        woken = woken + 1
      end
    else
      bury(id, value, now)
    end
  end
end
-- Retention of finished jobs: by count, then by age.
local over = redis.call('ZCARD', k('finished')) - keep
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', k('finished'), 0, over - 1)) do
    forget(id, true)
  end
  redis.call('ZREMRANGEBYRANK', k('finished'), 0, over - 1)
end
local old = redis.call('ZRANGEBYSCORE', k('finished'), '-inf', now - age, 'LIMIT', 0, 1000)
for _, id in ipairs(old) do
  forget(id, true)
  redis.call('ZREM', k('finished'), id)
end
wake(woken)
return n
