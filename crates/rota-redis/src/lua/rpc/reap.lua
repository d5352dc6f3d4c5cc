-- Hand back the deliveries of consumers whose lease lapsed: to the queue with
-- attempt + 1, or to the dead-letter stream once they reached the maximum.
-- KEYS[1] request stream, KEYS[2] dead-letter stream
-- ARGV[1] group, ARGV[2] lease key prefix, ARGV[3] max deliveries, ARGV[4] now (ms),
-- ARGV[5] the consumer to hand back regardless of its lease ('' for none: close)
local stream, dead = KEYS[1], KEYS[2]
local group, leases, max, now, closing = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', stream, group)
if not ok then
  return {0, 0}
end
local requeued, buried = 0, 0
for _, c in ipairs(consumers) do
  local name, pending = nil, 0
  for i = 1, #c, 2 do
    if c[i] == 'name' then
      name = c[i + 1]
    elseif c[i] == 'pending' then
      pending = c[i + 1]
    end
  end
  local lapsed = name ~= closing and redis.call('EXISTS', leases .. name) == 0
  if name == closing or lapsed then
    local left = pending
    while left > 0 do
      local batch = redis.call('XPENDING', stream, group, '-', '+', 500, name)
      if #batch == 0 then
        break
      end
      for _, p in ipairs(batch) do
        local id = p[1]
        local m, a = entry(stream, id)
        if m then
          if name == closing then
            redis.call('XADD', stream, '*', 'm', m, 'a', a)
            requeued = requeued + 1
          elseif a >= max then
            bury(dead, id, m, a, 'delivered ' .. a .. ' times (the maximum); the lease of consumer '
              .. name .. ' lapsed during the last delivery', now)
            buried = buried + 1
          else
            redis.call('XADD', stream, '*', 'm', m, 'a', a + 1)
            requeued = requeued + 1
          end
        end
        settle(stream, group, id)
      end
      left = left - #batch
    end
    redis.call('XGROUP', 'DELCONSUMER', stream, group, name)
    if name == closing then
      redis.call('DEL', leases .. name)
    end
  end
end
return {requeued, buried}
