-- The shard's lease: a key with a TTL whose value is "<epoch> <holder>",
-- and the latest epoch granted, META's field epoch, which never expires,
-- so no epoch is granted twice.
-- The end of a grant, by Redis's clock (ms), is what the holder fences
-- its job enqueues with: none lands after it.
-- ARGV[2] the operation:
--   acquire: ARGV[3] holder, ARGV[4] lease ms. Returns {the new epoch, its
--     end}, or {0} when a live lease holds the shard.
--   renew: ARGV[3] the lease's token "<epoch> <holder>", ARGV[4] lease
--     ms. Returns the lease's new end, or -1 when the lease lapsed or a
--     later one was granted.
--   release: ARGV[3] the token. Returns 1 if it was the live lease.
local op = ARGV[2]
local function ends()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[4])
end
if op == 'acquire' then
  if redis.call('EXISTS', LEASE) == 1 then return {0} end
  local epoch = redis.call('HINCRBY', META, 'epoch', 1)
  local ending = ends()
  redis.call('SET', LEASE, int(epoch) .. ' ' .. ARGV[3], 'PXAT', int(ending))
  return {epoch, ending}
elseif op == 'renew' then
  if not lease_ok(ARGV[3]) then return -1 end
  local ending = ends()
  redis.call('PEXPIREAT', LEASE, int(ending))
  return ending
elseif op == 'release' then
  if not lease_ok(ARGV[3]) then return 0 end
  redis.call('DEL', LEASE)
  return 1
end
return redis.error_reply('unknown lease operation ' .. tostring(op))
