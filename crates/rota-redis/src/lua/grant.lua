-- Grants a lease: the next epoch of its name, and a lease key of the grant's
-- own, "<prefix><name>#<epoch>" (for a fresh name, granted once: epoch 1,
-- "<prefix><name>"), with a TTL. The key of the name's previous
-- grant is deleted, so that grant's fenced writes are refused from now on
-- (even while its holder's clock says it runs) and a reap hands back what
-- it held. The lease keys are derived here from the name and the epoch the
-- script reads; all share the hash tag of KEYS[1].
-- KEYS[1] the epochs hash
-- ARGV[1] lease key prefix, ARGV[2] name, ARGV[3] lease ms,
-- ARGV[4] '1' for a stable name (epochs counted), '0' for a fresh unique one
local epoch = 1
if ARGV[4] == '1' then
  epoch = redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
  if epoch > 1 then
    redis.call('DEL', ARGV[1] .. ARGV[2] .. '#' .. (epoch - 1))
  end
end
local holder = ARGV[2]
if ARGV[4] == '1' then
  holder = holder .. '#' .. epoch
end
redis.call('SET', ARGV[1] .. holder, 1, 'PX', ARGV[3])
return epoch
