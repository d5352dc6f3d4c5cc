-- Gives held jobs back at once, fenced by the lease; with ARGV[3] = 'close'
-- gives back everything held and drops the consumer.
-- ARGV: consumer, now, mode (attempted|unattempted|close), ids...
local consumer, now, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if mode ~= 'close' and not lease_ok(consumer) then return -1 end
local held = k('held:' .. consumer)
local ids = {}
if mode == 'close' then
  ids = redis.call('SMEMBERS', held)
else
  for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local n = 0
for _, id in ipairs(ids) do
  if redis.call('SREM', held, id) == 1 then
    n = n + 1
    stop_running(id)
    local f = redis.call('HMGET', jk(id), 'p', 'pr', 'q', 'a', 'ca')
    if mode == 'attempted' then
      record_attempt(id, attempt_json(tonumber(f[4]), consumer, tonumber(f[5]) or now, now, 'cancelled'))
      redis.call('HSET', jk(id), 'a', tonumber(f[4]) + 1)
    end
    push_ready(id, f[1], f[2], f[3])
  end
end
if mode == 'close' then
  redis.call('DEL', held, k('lease:' .. consumer))
  redis.call('SREM', k('consumers'), consumer)
end
wake(n)
return n
