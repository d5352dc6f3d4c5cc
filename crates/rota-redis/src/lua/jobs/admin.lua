-- Cancels a job, re-queues a dead one, purges dead ones.
-- KEYS: the fixed ones, then (cancel, requeue) the job's key.
-- ARGV: base, op, then by op:
--   cancel <id> <now>: 1 if the job was scheduled or queued and is now
--     cancelled, 2 if it runs and its cancellation is now asked for (x set,
--     and the id in its holder's cancels set), else 0;
--   requeue <id> <now>: 1 if the job was dead and is queued again;
--   purge: deletes up to CHUNK dead jobs; returns how many (call again
--     until 0).
local op = ARGV[2]
if op == 'cancel' then
  local id, now, jkey = ARGV[3], tonumber(ARGV[4]), KEYS[FIXED + 1]
  local f = redis.call('HMGET', jkey, 's', 'p', 't', 'sc')
  local p = f[2]
  if not p then return 0 end
  if f[1] == 'scheduled' then
    if redis.call('ZREM', SCHED, id) == 0 then return 0 end
    if redis.call('HINCRBY', PSCHED, p, -1) <= 0 then redis.call('HDEL', PSCHED, p) end
  elseif not f[1] then
    -- Queued, unless a consumer holds it. A queued one stays in its lane,
    -- marked by its state, until a claim meets it (a lane is a list: taking
    -- a job out of its middle would cost its length); its lane counts it
    -- in TOMB meanwhile.
    local c = holder_of(id)
    if c then
      redis.call('HSET', jkey, 'x', 1)
      redis.call('SADD', cancels_key(c), id)
      return 2
    end
    redis.call('HINCRBY', TOMB, lane_of(p, f[3] or p, prio_of(f[4])), 1)
  else
    return 0
  end
  redis.call('HSET', jkey, 's', 'cancelled', 'f', int(now), 'rs', 'cancelled before it ran')
  done_add('cancelled', id, int(now))
  done_flush()
  return 1
elseif op == 'requeue' then
  local id, now, jkey = ARGV[3], tonumber(ARGV[4]), KEYS[FIXED + 1]
  if redis.call('ZREM', DEAD, id) == 0 then return 0 end
  local f = redis.call('HMGET', jkey, 'p', 't', 'sc', 'j')
  local sc = score(prio_of(f[3]), seq_take(1) + 1)
  redis.call('HSET', jkey, 'a', 1, 'sc', sc, 'due', int(now))
  redis.call('HDEL', jkey, 's', 'f', 'rs')
  ready_add(id, f[1], f[2] or f[1], sc, 1, int(now), f[4])
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
