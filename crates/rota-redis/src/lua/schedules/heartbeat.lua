-- Says a scheduler is alive, by Redis's clock, and answers the schedulers
-- alive. Not a shard's: KEYS[1] is the schedulers' sorted set (name ->
-- alive until, ms), under the hash tag {s:all}; ARGV[1] is empty,
-- ARGV[2] 'beat', ARGV[3] the name, ARGV[4] how long it is alive, ms.
-- Trims those whose time passed. Returns the names alive (unsorted).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
