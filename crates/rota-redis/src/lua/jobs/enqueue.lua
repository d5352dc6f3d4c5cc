-- Accepts a batch of validated jobs of one queue, all or none: every read
-- comes before the first write, so an error of a read -- or Redis refusing
-- to write at all, which it says at the first write -- leaves nothing
-- written.
-- KEYS: the fixed ones, then the job key of each job, in order.
-- ARGV: base, now, '1' if the enqueuer chose any id, the fence ('' for
-- none: else Redis's time in ms after which the batch is refused, the end
-- of the enqueuer's lease); then 8 per job: id,
-- partition, tenant, priority, due, idempotency key ('' for none), max
-- attempts ('' for the default), job JSON.
-- Returns {position, earlier id} (flat, positions from 1) for each job that
-- is a duplicate: of an earlier job with its idempotency key (retained, or
-- earlier in the batch), or of one with its chosen id.
local now, chosen = tonumber(ARGV[2]), ARGV[3] == '1'
-- By Redis's clock, like the lease whose end the fence is: a lease that
-- ends later cannot have been taken over yet.
if ARGV[4] ~= '' and server_ms() > tonumber(ARGV[4]) then
  return redis.error_reply('FENCED the enqueuer\'s lease ended; nothing was enqueued')
end
local FIRST, PER = 5, 8
local count = (#ARGV - FIRST + 1) / PER

-- Reads: the earlier holders of the batch's idempotency keys, and chosen
-- ids already taken.
local names = {}
for a = FIRST + 5, #ARGV, PER do
  if ARGV[a] ~= '' then names[#names + 1] = ARGV[a] end
end
local dups, skip = {}, {}
if #names > 0 or chosen then
  local known = {}
  if #names > 0 then
    local owners = bulk('HMGET', {IKEYS}, names)
    for i = 1, #names do
      local id = owners[i]
      -- A key outlives its job only if the job was deleted by hand.
      if id and redis.call('EXISTS', jk(id)) == 1 then known[names[i]] = id end
    end
  end
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
      dups[#dups + 1] = i + 1
      dups[#dups + 1] = earlier
      skip[i] = true
    else
      by_id[id] = true
      if key ~= '' then by_key[key] = id end
    end
  end
end

-- Writes.
local s0 = seq_take(count - #dups / 2)
local ikeys, kof = {}, {}
-- A single job due now, with nothing else claimable and a consumer
-- waiting that may take it, goes straight to that consumer.
local direct = nil
if count == 1 and #dups == 0 and tonumber(ARGV[FIRST + 4]) <= now
  and redis.call('EXISTS', RING) == 0 then
  local t = ARGV[FIRST + 2]
  for _, w in ipairs(waiting()) do
    local room = true
    if w[3] > 0 then
      local r = tonumber(redis.call('HGET', RUN, t) or '0')
      if r >= BIG then r = r - BIG end
      room = r < w[3]
    end
    if room then
      direct = w
      break
    end
  end
end
local q = s0
for i = 0, count - 1 do
  if not skip[i] then
    local a = FIRST + i * PER
    local id, p, t, pr, due, key, max = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
      tonumber(ARGV[a + 4]), ARGV[a + 5], ARGV[a + 6]
    local jkey = KEYS[FIXED + 1 + i]
    q = q + 1
    local sc = q
    if pr ~= '0' then sc = score(clamp(pr), q) end
    if t == p and max == '' and due <= now then
      redis.call('HSET', jkey, 'j', ARGV[a + 7], 'p', p, 'sc', sc)
    else
      local fields = {'j', ARGV[a + 7], 'p', p, 'sc', sc}
      if t ~= p then
        fields[#fields + 1] = 't'
        fields[#fields + 1] = t
      end
      if max ~= '' then
        fields[#fields + 1] = 'm'
        fields[#fields + 1] = max
      end
      if due > now then
        fields[#fields + 1] = 's'
        fields[#fields + 1] = 'scheduled'
      end
      redis.call('HSET', jkey, unpack(fields))
    end
    if direct then
      local count = direct[3] > 0 or counting()
      redis.call('HSET', held_key(direct[1]), id, held_value(now, count))
      if count then redis.call('HINCRBY', RUN, t, 1) end
      hand(direct, {entry(sc, id, 1, '-', ARGV[a + 7])})
    elseif due > now then
      later_add(id, p, due)
    else
      ready_add(id, p, t, sc, 1, '-', ARGV[a + 7])
    end
    if key ~= '' then
      ikeys[#ikeys + 1] = key
      ikeys[#ikeys + 1] = id
      kof[#kof + 1] = id
      kof[#kof + 1] = key
    end
  end
end
if #ikeys > 0 then
  bulk('HSET', {IKEYS}, ikeys, 2)
  bulk('HSET', {KOF}, kof, 2)
end
later_flush()
if ready_flush() > 0 then handoff(now) end
return dups
