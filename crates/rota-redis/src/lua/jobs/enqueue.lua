-- Accepts a batch of validated jobs of one queue, all or none: every read
-- comes before the first write, so an error of a read -- or Redis refusing
-- to write at all, which it says at the first write -- leaves nothing
-- written.
-- KEYS: the fixed ones, then the job key of each job, in order.
-- ARGV: base, now, '1' if the enqueuer chose any id; then 8 per job: id,
-- partition, tenant, priority, due, idempotency key ('' for none), max
-- attempts ('' for the default), job JSON.
-- Returns per job {id, duplicate (0/1)}.
local now, chosen = tonumber(ARGV[2]), ARGV[3] == '1'
local FIRST, PER = 4, 8
local count = (#ARGV - FIRST + 1) / PER

-- Reads: the jobs earlier holders of the batch's idempotency keys are, and
-- chosen ids already taken.
local names = {}
for i = 0, count - 1 do
  local key = ARGV[FIRST + i * PER + 5]
  if key ~= '' then names[#names + 1] = key end
end
local known = {}
if #names > 0 then
  for i, id in ipairs(bulk('HMGET', {IKEYS}, names)) do
    -- A key outlives its job only if the job was deleted by hand.
    if id and redis.call('EXISTS', jk(id)) == 1 then known[names[i]] = id end
  end
end
local out, accepted = {}, {}
local by_key, by_id = {}, {}
for i = 0, count - 1 do
  local a = FIRST + i * PER
  local id, key = ARGV[a], ARGV[a + 5]
  local earlier = nil
  if key ~= '' then earlier = by_key[key] or known[key] end
  if not earlier and chosen and (by_id[id] or redis.call('EXISTS', KEYS[FIXED + 1 + i]) == 1) then
    earlier = id
  end
  if earlier then
    out[i + 1] = {earlier, 1}
  else
    out[i + 1] = {id, 0}
    accepted[#accepted + 1] = i
    by_id[id] = true
    if key ~= '' then by_key[key] = id end
  end
end

-- Writes.
local s0 = seq_take(#accepted)
local ikeys, kof = {}, {}
for n, i in ipairs(accepted) do
  local a = FIRST + i * PER
  local id, p, t, pr, due, key, max, json = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
    tonumber(ARGV[a + 4]), ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local q = s0 + n
  local fields = {'j', json, 'p', p, 't', t, 'pr', pr, 'q', int(q)}
  if max ~= '' then
    fields[#fields + 1] = 'm'
    fields[#fields + 1] = max
  end
  fields[#fields + 1] = 's'
  if due > now then
    fields[#fields + 1] = 'scheduled'
    later_add(id, p, due)
  else
    fields[#fields + 1] = 'queued'
    ready_add(id, p, t, score(pr, q))
  end
  redis.call('HSET', KEYS[FIXED + 1 + i], unpack(fields))
  if key ~= '' then
    ikeys[#ikeys + 1] = key
    ikeys[#ikeys + 1] = id
    kof[#kof + 1] = id
    kof[#kof + 1] = key
  end
end
if #ikeys > 0 then
  bulk('HSET', {IKEYS}, ikeys, 2)
  bulk('HSET', {KOF}, kof, 2)
end
later_flush()
if ready_flush() > 0 then handoff(now) end
return out
