-- Lists the ids of a page of one state's jobs (see rota_core::jobs::list).
-- Writes nothing; reads at most `budget` entries of the state's index,
-- plus, for queued jobs, the names of every lane with jobs (the ring's
-- partitions and the parked tenants'), which it sorts.
-- KEYS: the fixed ones.
-- ARGV: base, state, tenant ('' for any), cursor ('' for the first page;
-- well formed: the caller checked it), limit, budget.
-- Returns {next cursor, or '' when no more may follow, ids...}. The caller
-- reads the records and keeps those still in the state: a lane keeps the
-- entries of jobs cancelled while queued until a claim meets them.
local state, tenant, cursor = ARGV[2], ARGV[3], ARGV[4]
local limit, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local ids, next_cursor = {}, ''

local function wanted(id)
  if tenant == '' then return true end
  local pt = redis.call('HMGET', jk(id), 'p', 't')
  return (pt[2] or pt[1]) == tenant
end
local function words(s)
  local out = {}
  for w in string.gmatch(s, '[^ ]+') do out[#out + 1] = w end
  return out
end

if state == 'scheduled' then
  -- Soonest due first: the scheduled set, by (due, id); cursor "due id".
  local start = 0
  if cursor ~= '' then
    local c = words(cursor)
    local rank = redis.call('ZRANK', SCHED, c[2])
    if rank then
      start = rank + 1
    else
      -- Gone since: start after every entry that sorted before it.
      start = redis.call('ZCOUNT', SCHED, '-inf', '(' .. c[1])
      for _, m in ipairs(redis.call('ZRANGE', SCHED, c[1], c[1], 'BYSCORE')) do
        if m <= c[2] then start = start + 1 end
      end
    end
  end
  local got = redis.call('ZRANGE', SCHED, start, start + budget - 1, 'WITHSCORES')
  local read = 0
  for i = 1, #got, 2 do
    read = read + 1
    if wanted(got[i]) then ids[#ids + 1] = got[i] end
    if #ids == limit or i + 1 == #got then
      if start + read < redis.call('ZCARD', SCHED) then
        next_cursor = got[i + 1] .. ' ' .. got[i]
      end
      break
    end
  end
elseif state == 'dead' then
  -- The latest dead first: the dead set by its order; cursor "order".
  local max = '+inf'
  if cursor ~= '' then max = '(' .. cursor end
  local got = redis.call('ZRANGE', DEAD, max, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, budget,
    'WITHSCORES')
  for i = 1, #got, 2 do
    if wanted(got[i]) then ids[#ids + 1] = got[i] end
    if #ids == limit or i + 1 == #got then
      if i + 1 < #got or #got == 2 * budget then next_cursor = got[i + 1] end
      break
    end
  end
elseif state == 'running' then
  -- Consumer by consumer, each one's jobs by id; cursor "consumer id".
  local c = words(cursor)
  local consumers = redis.call('SMEMBERS', CONSUMERS)
  table.sort(consumers)
  local read, done = 0, false
  for _, holder in ipairs(consumers) do
    if cursor == '' or holder >= c[1] then
      local held = redis.call('HKEYS', held_key(holder))
      table.sort(held)
      for _, id in ipairs(held) do
        if cursor == '' or holder > c[1] or id > c[2] then
          read = read + 1
          if wanted(id) then ids[#ids + 1] = id end
          if #ids == limit or read == budget then
            next_cursor = holder .. ' ' .. id
            done = true
            break
          end
        end
      end
    end
    if done then break end
  end
elseif state == 'queued' then
  -- Lane by lane, by name (so partition by partition), each lane in the
  -- order it is served; cursor "lane offset", the offset of the next entry.
  local lanes, seen = {}, {}
  local function add(p, lane)
    if not seen[lane] and (tenant == '' or lane_tenant(p, lane) == tenant) then
      seen[lane] = true
      lanes[#lanes + 1] = lane
    end
  end
  for _, p in ipairs(redis.call('ZRANGE', RING, 0, -1)) do
    if redis.call('SISMEMBER', GRP, p) == 1 then
      for _, lane in ipairs(redis.call('ZRANGE', lanes_of(p), 0, -1)) do add(p, lane) end
    else
      add(p, p)
    end
  end
  local run = redis.call('HGETALL', RUN)
  for i = 1, #run, 2 do
    if tonumber(run[i + 1]) >= BIG then
      for _, lane in ipairs(redis.call('SMEMBERS', parked_key(run[i]))) do
        add(string.match(lane, '^[^:]+'), lane)
      end
    end
  end
  table.sort(lanes)
  local c = words(cursor)
  local read, done = 0, false
  for _, lane in ipairs(lanes) do
    if cursor == '' or lane >= c[1] then
      local from = 0
      if cursor ~= '' and lane == c[1] then from = tonumber(c[2]) end
      local got = redis.call('LRANGE', lane_key(lane), from, from + budget - read - 1)
      for j, entry in ipairs(got) do
        read = read + 1
        -- (The lanes were chosen by tenant already.)
        local id = string.match(entry, '^%S+ (%S+)')
        ids[#ids + 1] = id
        if #ids == limit or read == budget then
          next_cursor = lane .. ' ' .. (from + j)
          done = true
          break
        end
      end
    end
    if done then break end
  end
else
  -- Succeeded, failed, cancelled: the latest finished first, from the
  -- finished list ("<at> <state> <id>", in the order jobs finished);
  -- cursor: the last entry read. Retention trims the list's oldest end, so
  -- a cursor gone from it had nothing older left.
  local stop
  if cursor == '' then
    stop = redis.call('LLEN', FINISHED)
  else
    stop = redis.call('LPOS', FINISHED, cursor, 'RANK', -1)
    if not stop then return {''} end
  end
  local from = math.max(0, stop - budget)
  local got = redis.call('LRANGE', FINISHED, from, stop - 1)
  for i = #got, 1, -1 do
    local s, id = string.match(got[i], '^%S+ (%S+) (%S+)$')
    if s == state and wanted(id) then ids[#ids + 1] = id end
    if #ids == limit or i == 1 then
      if i > 1 or from > 0 then next_cursor = got[i] end
      break
    end
  end
end

local out = {next_cursor}
for _, id in ipairs(ids) do out[#out + 1] = id end
return out
