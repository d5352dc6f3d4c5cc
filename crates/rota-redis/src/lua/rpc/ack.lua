-- Acknowledge deliveries, fenced by the consumer's lease.
-- KEYS[1] request stream, KEYS[2] the consumer's lease key
-- ARGV[1] group, ARGV[2..] entry ids
-- Returns the number of entries acknowledged, or -1 if the lease lapsed.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local ids = {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
if #ids == 0 then
  return 0
end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return acked
