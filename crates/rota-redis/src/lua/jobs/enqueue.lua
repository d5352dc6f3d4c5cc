-- Accepts a batch of validated jobs.
-- ARGV[1] now, ARGV[2] '1' if the enqueuer chose any ids; then 8 per job:
-- id, partition, tenant, priority, due, idempotency key, max attempts ('' for
-- the default), job JSON.
-- Returns per job {id, duplicate (0/1)}.
local now, chosen = tonumber(ARGV[1]), ARGV[2] == '1'
local count = (#ARGV - 2) / 8
-- Reserve the batch's order numbers at once.
local seq = redis.call('INCRBY', k('seq'), count) - count
local out = {}
local woken = 0
local parts = {}
for i = 3, #ARGV, 8 do
  local id, part, tenant, prio, due, key, max, json = ARGV[i], ARGV[i + 1], ARGV[i + 2],
    ARGV[i + 3], tonumber(ARGV[i + 4]), ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  seq = seq + 1
  local existing = nil
  if key ~= '' then
    existing = redis.call('HGET', k('keys'), key)
    if existing and redis.call('EXISTS', jk(existing)) == 0 then existing = nil end
  end
  if not existing and chosen and redis.call('EXISTS', jk(id)) == 1 then existing = id end
  if existing then
    out[#out + 1] = {existing, 1}
  else
    local state = 'queued'
    if due > now then state = 'scheduled' end
    if max ~= '' then
      redis.call('HSET', jk(id), 'j', json, 'a', 1, 'p', part, 't', tenant, 'pr', prio,
        'due', due, 'q', seq, 'k', key, 's', state, 'm', max)
    else
      redis.call('HSET', jk(id), 'j', json, 'a', 1, 'p', part, 't', tenant, 'pr', prio,
        'due', due, 'q', seq, 'k', key, 's', state)
    end
    if state == 'scheduled' then
      redis.call('ZADD', k('sched'), due, id)
      redis.call('HINCRBY', k('psched'), part, 1)
    else
      redis.call('ZADD', k('ready:' .. part), score(prio, seq), id)
      woken = woken + 1
    end
    parts[part] = true
    if key ~= '' then redis.call('HSET', k('keys'), key, id) end
    out[#out + 1] = {id, 0}
  end
end
-- Once per partition: register it, and put it in the ring if it just got
-- its first queued jobs.
for part in pairs(parts) do
  redis.call('SADD', k('parts'), part)
  local ready = k('ready:' .. part)
  local n = redis.call('ZCARD', ready)
  if n > 0 and redis.call('LPOS', k('ring'), part) == false then
    redis.call('RPUSH', k('ring'), part)
  end
end
wake(woken)
return out
