-- Cancels, re-queues dead, purges dead, counts.
-- ARGV[1]: op; the rest depends on it.
local op = ARGV[1]
if op == 'cancel' then
  local id, now = ARGV[2], tonumber(ARGV[3])
  local f = redis.call('HMGET', jk(id), 's', 'p')
  if f[1] == 'scheduled' then
    redis.call('ZREM', k('sched'), id)
    hincr(k('psched'), f[2], -1)
  elseif f[1] == 'queued' then
    local ready = k('ready:' .. f[2])
    redis.call('ZREM', ready, id)
    if redis.call('ZCARD', ready) == 0 then redis.call('LREM', k('ring'), 0, f[2]) end
  else
    return 0
  end
  finish(id, 'cancelled', 'cancelled before it ran', now)
  return 1
elseif op == 'requeue' then
  local id = ARGV[2]
  if redis.call('HGET', jk(id), 's') ~= 'dead' then return 0 end
  local score = redis.call('ZSCORE', k('dead'), id)
  redis.call('ZREM', k('dead'), id)
  local f = redis.call('HMGET', jk(id), 'p', 'pr')
  local seq = redis.call('INCR', k('seq'))
  redis.call('HSET', jk(id), 'a', 1, 'q', seq, 'due', ARGV[3])
  redis.call('HDEL', jk(id), 'f', 'rs')
  push_ready(id, f[1], f[2], seq)
  wake(1)
  return 1
elseif op == 'purge' then
  local ids = redis.call('ZRANGE', k('dead'), 0, -1)
  for _, id in ipairs(ids) do forget(id, false) end
  redis.call('DEL', k('dead'))
  return #ids
elseif op == 'counts' then
  local parts = redis.call('SMEMBERS', k('parts'))
  local rows = {}
  for _, p in ipairs(parts) do
    local q = redis.call('ZCARD', k('ready:' .. p))
    local s = tonumber(redis.call('HGET', k('psched'), p) or '0')
    local r = tonumber(redis.call('HGET', k('prun'), p) or '0')
    if q + s + r > 0 then
      rows[#rows + 1] = {p, s, q, r}
    else
      redis.call('SREM', k('parts'), p)
    end
  end
  local fin = redis.call('HGETALL', k('fin'))
  return {rows, fin, redis.call('ZCARD', k('dead'))}
end
return redis.error_reply('unknown op ' .. tostring(op))
