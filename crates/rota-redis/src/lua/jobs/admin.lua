-- Cancels a job, re-queues a dead one, purges dead ones.
-- KEYS: the fixed ones, then (cancel, requeue) the job's key.
-- ARGV: base, op, then by op:
--   cancel <id> <now>: 1 if the job was scheduled or queued and is now
--     cancelled, else 0;
--   requeue <id> <now>: 1 if the job was dead and is queued again;
--   purge: deletes up to CHUNK dead jobs; returns how many (call again
--     until 0).
local op = ARGV[2]
if op == 'cancel' then
  local id, now, jkey = ARGV[3], tonumber(ARGV[4]), KEYS[FIXED + 1]
  local f = redis.call('HMGET', jkey, 's', 'p', 't')
  if f[1] == 'scheduled' then
    if redis.call('ZREM', SCHED, id) == 0 then return 0 end
    if redis.call('HINCRBY', PSCHED, f[2], -1) <= 0 then redis.call('HDEL', PSCHED, f[2]) end
  elseif f[1] == 'queued' then
    -- Not in its lane: a worker holds it.
    local lane = lane_key(f[2], f[3])
    if redis.call('ZREM', lane, id) == 0 then return 0 end
    -- An emptied lane of an ungrouped partition takes the partition off
    -- the ring; a grouped one's lanes are set right by the next claim.
    if redis.call('EXISTS', lane) == 0 and redis.call('SISMEMBER', GRP, f[2]) == 0 then
      redis.call('ZREM', RING, f[2])
    end
  else
    return 0
  end
  redis.call('HSET', jkey, 's', 'cancelled', 'f', int(now), 'rs', 'cancelled before it ran')
  done_add('cancelled', id, now)
  done_flush()
  return 1
elseif op == 'requeue' then
  local id, now, jkey = ARGV[3], tonumber(ARGV[4]), KEYS[FIXED + 1]
  if redis.call('ZREM', DEAD, id) == 0 then return 0 end
  local f = redis.call('HMGET', jkey, 'p', 't', 'pr')
  local q = seq_take(1) + 1
  redis.call('HSET', jkey, 's', 'queued', 'a', 1, 'q', int(q), 'due', int(now))
  redis.call('HDEL', jkey, 'f', 'rs')
  ready_add(id, f[1], f[2], score(f[3], q))
  ready_flush()
  handoff(now)
  return 1
elseif op == 'purge' then
  local ids = redis.call('ZRANGE', DEAD, 0, CHUNK - 1)
  if #ids == 0 then return 0 end
  redis.call('ZREMRANGEBYRANK', DEAD, 0, #ids - 1)
  forget(ids)
  return #ids
end
return redis.error_reply('unknown op ' .. tostring(op))
