-- Accepts a batch of validated jobs.
-- ARGV[1] now; then 8 per job: id, partition, tenant, priority, due, idempotency key,
-- max attempts ('' for the default), job JSON
-- Returns per job {id, duplicate (0/1)}.
local now = tonumber(ARGV[1])
local out = {}
local woken = 0
for i = 2, #ARGV, 8 do
  local id, part, tenant, prio, due, key, max, json = ARGV[i], ARGV[i + 1], ARGV[i + 2],
    ARGV[i + 3], tonumber(ARGV[i + 4]), ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local existing = nil
  if key ~= '' then
    existing = redis.call('HGET', k('keys'), key)
    if existing and redis.call('EXISTS', jk(existing)) == 0 then existing = nil end
  end
  if not existing and redis.call('EXISTS', jk(id)) == 1 then existing = id end
  if existing then
    out[#out + 1] = {existing, 1}
  else
    local seq = redis.call('INCR', k('seq'))
    redis.call('HSET', jk(id), 'j', json, 'a', 1, 'p', part, 't', tenant, 'pr', prio,
      'due', due, 'q', seq, 'k', key, 'h', '')
    if max ~= '' then redis.call('HSET', jk(id), 'm', max) end
    if due > now then
      schedule(id, part, due)
    else
      push_ready(id, part, prio, seq)
      woken = woken + 1
    end
    redis.call('SADD', k('parts'), part)
    if key ~= '' then redis.call('HSET', k('keys'), key, id) end
    out[#out + 1] = {id, 0}
  end
end
wake(woken)
return out
