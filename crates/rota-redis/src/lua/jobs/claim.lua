-- Claims up to max jobs, one per partition per turn of the ring.
-- ARGV: consumer, max, now, tenant cap (0: none)
-- Returns -1 if the lease lapsed, else {next due ms or -1, {id, attempt, due, json}...}
local consumer, max, now, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if not lease_ok(consumer) then return -1 end
-- Promote due scheduled jobs.
local due = redis.call('ZRANGEBYSCORE', k('sched'), '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', k('sched'), id)
  local f = redis.call('HMGET', jk(id), 'p', 'pr', 'q')
  if f[1] then
    hincr(k('psched'), f[1], -1)
    push_ready(id, f[1], f[2], f[3])
  end
end
local out = {}
local misses = 0
local ring = redis.call('LLEN', k('ring'))
while #out < max do
  if ring == 0 or misses >= ring then break end
  local part = redis.call('LMOVE', k('ring'), k('ring'), 'LEFT', 'RIGHT')
  local ready = k('ready:' .. part)
  local pick = nil
  if cap > 0 then
    for _, id in ipairs(redis.call('ZRANGE', ready, 0, 19)) do
      local t = redis.call('HGET', jk(id), 't')
      if tonumber(redis.call('HGET', k('running'), t) or '0') < cap then pick = id break end
    end
    if pick then redis.call('ZREM', ready, pick) end
  else
    pick = redis.call('ZPOPMIN', ready)[1]
  end
  if pick then
    misses = 0
    if redis.call('ZCARD', ready) == 0 then
      redis.call('LREM', k('ring'), -1, part)
      ring = ring - 1
    end
    local f = redis.call('HMGET', jk(pick), 't', 'a', 'due', 'j')
    redis.call('HSET', jk(pick), 's', 'running', 'ca', now)
    redis.call('HINCRBY', k('running'), f[1], 1)
    redis.call('HINCRBY', k('prun'), part, 1)
    redis.call('SADD', k('held:' .. consumer), pick)
    out[#out + 1] = {pick, f[2], f[3], f[4]}
  else
    misses = misses + 1
  end
end
local next_due = redis.call('ZRANGE', k('sched'), 0, 0, 'WITHSCORES')[2] or -1
return {next_due, out}
