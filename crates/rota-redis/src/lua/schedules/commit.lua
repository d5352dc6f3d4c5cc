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
if not lease_ok(ARGV[3]) then return {-1} end
local keep = tonumber(ARGV[4])
local out = {1}
local a, k = 5, FIXED + 1
-- The schedules written are put a few commands at a time, at the end; a
-- later change of one in the same call reads what was put.
local b, written = batch(), {}
while a <= #ARGV do
  local id, read, due, tenant, json = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local nd, nh, nf = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
  local hist = KEYS[k]
  local first = a + 8
  a = first + nd + nh + 4 * nf
  k = k + 1
  local old = written[id]
  if old == nil then old = redis.call('HGET', SCHEDULES, id) end
  local v = head(old)
  if not v then
    out[#out + 1] = -1
  elseif v ~= read then
    out[#out + 1] = 0
  else
    local next = int(tonumber(v) + 1)
    if written[id] ~= nil then
      -- Put twice: the first one's writes go now, before this one's.
      flush(b)
      b = batch()
    end
    written[id] = put(b, id, old, next, due, tenant, json)
    if nd > 0 then
      local seq = redis.call('HINCRBY', META, 'oseq', nd) - nd
      for c = 0, nd - 1, CHUNK / 2 do
        local members = {}
        for i = c, math.min(c + CHUNK / 2, nd) - 1 do
          members[#members + 1] = seq + i + 1
          members[#members + 1] = ARGV[first + i]
        end
        redis.call('ZADD', OUTBOX, 'NX', unpack(members))
      end
    end
    local h = first + nd
    for c = h, h + nh - 1, CHUNK do
      redis.call('LPUSH', hist, unpack(ARGV, c, math.min(c + CHUNK, h + nh) - 1))
    end
    local f = h + nh
    for i = 0, nf - 1 do
      local occ, job, at, record = ARGV[f + 4 * i], ARGV[f + 4 * i + 1], ARGV[f + 4 * i + 2],
        ARGV[f + 4 * i + 3]
      -- The run's entry: the newest with its occurrence and a job, read a
      -- page at a time from the newest (it is nearly always among the
      -- first few). Its dispatch instant is kept.
      local found, page, PAGE = nil, 0, 8
      while not found do
        local entries = redis.call('LRANGE', hist, page, page + PAGE - 1)
        for n, e in ipairs(entries) do
          local o, j, t = string.match(e, '^(%S+) (%S+) (%S+) ')
          if o == occ and j ~= '-' then
            found = page + n
            at = t
            break
          end
        end
        if #entries < PAGE then break end
        page = page + PAGE
      end
      local entry = occ .. ' ' .. job .. ' ' .. at .. ' ' .. record
      if found then
        redis.call('LSET', hist, found - 1, entry)
      else
        redis.call('LPUSH', hist, entry)
      end
    end
    if nh > 0 or nf > 0 then redis.call('LTRIM', hist, 0, keep - 1) end
    out[#out + 1] = 1
  end
end
flush(b)
return out
