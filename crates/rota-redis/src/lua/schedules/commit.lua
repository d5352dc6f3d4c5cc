-- Commits the changes of the shard's owner, fenced by its lease, each one
-- compare-and-set on its schedule's version.
-- KEYS: the fixed ones, then per change its schedule's history.
-- ARGV[2] 'commit', ARGV[3] the lease's token, ARGV[4] the most history
-- entries kept; then per change: id, the version read, due ('' for none),
-- tenant, JSON (of the next version), then the counts nd, nh, nf; then nd
-- outbox members ("<schedule> <occurrence> <job>"), nh history entries
-- (oldest first), and nf finished runs, 4 arguments each: occurrence, job,
-- at ms, record JSON.
-- Returns {-1} when the lease lapsed (nothing written), else {1, then per
-- change 1 (written), 0 (its version moved) or -1 (it is gone)}: a change
-- refused writes nothing.
--
-- The schedules, their due entries and the outbox members of the changes
-- written go a few commands at a time, at the end, in the order of the
-- changes; what is stored of them is read in one HMGET at the start, and
-- a later change of a schedule in the same call reads what an earlier one
-- put.
if not lease_ok(ARGV[3]) then return {-1} end
local keep = tonumber(ARGV[4])

-- Where each change starts, and the ids to read.
local starts, ids, listed = {}, {}, {}
local a = 5
while a <= #ARGV do
  starts[#starts + 1] = a
  local id = ARGV[a]
  if not listed[id] then
    listed[id] = true
    ids[#ids + 1] = id
  end
  a = a + 8 + tonumber(ARGV[a + 5]) + tonumber(ARGV[a + 6]) + 4 * tonumber(ARGV[a + 7])
end
local stored = read_stored(ids)

-- The history entry of a finished run: the newest with its occurrence
-- and a job, read from the newest (it is nearly always the first, so one
-- entry is read before pages of 8). Returns its index from 0 and its
-- dispatch instant, or nil.
local function run_entry(hist, occ)
  local from, size = 0, 1
  while true do
    local entries = redis.call('LRANGE', hist, from, from + size - 1)
    for n, e in ipairs(entries) do
      local o, j, t = string.match(e, '^(%S+) (%S+) (%S+) ')
      if o == occ and j ~= '-' then return from + n - 1, t end
    end
    if #entries < size then return nil end
    from = from + size
    size = 8
  end
end

local out = {1}
local b, outbox = batch(), {}
for n, a in ipairs(starts) do
  local id, read, due, tenant, json = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local nd, nh, nf = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
  local hist = KEYS[FIXED + n]
  local old = stored[id]
  local v = head(old)
  if not v then
    out[#out + 1] = -1
  elseif v ~= read then
    out[#out + 1] = 0
  else
    if b.put[id] then
      -- Put twice: the first one's writes go now, before this one's.
      flush(b)
      b = batch()
    end
    stored[id] = put(b, id, old, int(tonumber(v) + 1), due, tenant, json)
    local first = a + 8
    for i = first, first + nd - 1 do outbox[#outbox + 1] = ARGV[i] end
    local h, length = first + nd, nil
    for c = h, h + nh - 1, CHUNK do
      length = redis.call('LPUSH', hist, unpack(ARGV, c, math.min(c + CHUNK, h + nh) - 1))
    end
    local f = h + nh
    for i = 0, nf - 1 do
      local occ, job, at, record = ARGV[f + 4 * i], ARGV[f + 4 * i + 1], ARGV[f + 4 * i + 2],
        ARGV[f + 4 * i + 3]
      -- Its dispatch instant is the entry's.
      local found, t = run_entry(hist, occ)
      if found then
        redis.call('LSET', hist, found, occ .. ' ' .. job .. ' ' .. t .. ' ' .. record)
      else
        length = redis.call('LPUSH', hist, occ .. ' ' .. job .. ' ' .. at .. ' ' .. record)
      end
    end
    if length and length > keep then redis.call('LTRIM', hist, 0, keep - 1) end
    out[#out + 1] = 1
  end
end
flush(b)
-- The outbox members, numbered in the order committed.
if #outbox > 0 then
  local seq = redis.call('HINCRBY', META, 'oseq', #outbox) - #outbox
  for c = 1, #outbox, CHUNK / 2 do
    local members = {}
    for i = c, math.min(c + CHUNK / 2 - 1, #outbox) do
      members[#members + 1] = seq + i
      members[#members + 1] = outbox[i]
    end
    redis.call('ZADD', OUTBOX, 'NX', unpack(members))
  end
end
return out
