-- Claiming, shared by the functions that claim (claim.lua) and those that
-- hand work to waiting consumers (every function that makes jobs
-- claimable). Follows common.lua in the library.

-- Queues the scheduled jobs that are due, at most CHUNK per call.
local function promote(now)
  local due = redis.call('ZRANGE', SCHED, '-inf', now, 'BYSCORE', 'LIMIT', 0, CHUNK)
  if #due == 0 then return 0 end
  bulk('ZREM', {SCHED}, due)
  local per, plist = {}, {}
  for _, id in ipairs(due) do
    local f = redis.call('HMGET', jk(id), 'p', 't', 'sc', 'a', 'due', 'j')
    local p = f[1]
    if p then
      if not per[p] then
        per[p] = 0
        plist[#plist + 1] = p
      end
      per[p] = per[p] + 1
      redis.call('HDEL', jk(id), 's')
      ready_add(id, p, f[2] or p, tonumber(f[3]), f[4] or 1, f[5] or '-', f[6])
    end
  end
  for _, p in ipairs(plist) do
    if redis.call('HINCRBY', PSCHED, p, -per[p]) <= 0 then redis.call('HDEL', PSCHED, p) end
  end
  ready_flush()
  return #due
end

-- Claims up to `max` queued jobs for consumer `c`, skipping tenants with
-- `cap` jobs running (0: no cap), and holds them. Returns their lane
-- entries, in the order a claim of one job at a time would take them.
--
-- The ring orders the ready partitions by turn. Each turn takes one job of
-- a partition and sends the partition to the back. So that a claim costs
-- what it takes and not what the queue holds:
-- * with at least as many partitions ready as jobs wanted, it takes one job
--   from each of the first ones, reading the ring a page at a time;
-- * with fewer, it takes as many turns of every partition as the jobs
--   wanted allow in one pop per partition (water-filling), then one more
--   from the first few;
-- * a partition found empty leaves the ring; a tenant found at its cap is
--   parked: its lane leaves its partition's candidates (a partition left
--   without any leaves the ring) until one of its jobs stops running. So a
--   capped tenant costs one skip, not a scan, however many jobs it has.
local function take(c, max, cap, now)
  if max <= 0 then return {} end
  local R = max
  local tick = 0
  local runs = {}      -- tenant -> running count read (BIG added while parked)
  local claimed = {}   -- tenant -> jobs taken now
  local tlist = {}     -- tenants in the order of their first take
  local newly = {}     -- tenant -> lanes parked now
  local nlist = {}
  local order = {}     -- lane entries, in claim order
  local seen = {}      -- partitions visited
  local ghosts = {}    -- lane -> cancelled jobs met in it
  local tombs = redis.call('HLEN', TOMB) > 0
  local count = cap > 0 or counting()

  local function running(t)
    local r = runs[t]
    if r == nil then
      r = tonumber(redis.call('HGET', RUN, t) or '0')
      runs[t] = r
    end
    return r
  end
  local function busy(t)
    local r = running(t)
    if r >= BIG then r = r - BIG end
    return r + (claimed[t] or 0)
  end
  local function park(t, lane)
    if not newly[t] then
      newly[t] = {}
      nlist[#nlist + 1] = t
    end
    table.insert(newly[t], lane)
  end
  local function took(t, n)
    if not claimed[t] then
      claimed[t] = 0
      tlist[#tlist + 1] = t
    end
    claimed[t] = claimed[t] + n
  end

  -- Up to n jobs off the front of a lane, and whether it may hold more.
  -- Jobs cancelled while queued stay in their lane until met here.
  local function pop(lane, n)
    local got = redis.call('LPOP', lane_key(lane), n) or {}
    local kept = got
    if tombs then
      -- A job cancelled while queued stays in its lane until met here: its
      -- hash has a state, or is gone, or (its id chosen again) another score.
      kept = {}
      for _, e in ipairs(got) do
        local f = redis.call('HMGET', jk(entry_id(e)), 's', 'sc')
        if f[1] or not f[2] or tonumber(f[2]) ~= entry_score(e) then
          ghosts[lane] = (ghosts[lane] or 0) + 1
        else
          kept[#kept + 1] = e
        end
      end
    end
    -- A lane whose last job this took may look live: a claim that comes by
    -- later finds it dry and drops it, and an enqueue that finds it dry
    -- puts its partition at the front as if new.
    return kept, #got == n
  end

  -- The best lane of grouped partition p with a job and room under the
  -- cap; stale entries (a lane emptied, a first job taken) are set right
  -- on the way, and tenants at their cap parked.
  local function pick(p)
    local L = lanes_of(p)
    while true do
      local top = redis.call('ZRANGE', L, 0, 0, 'WITHSCORES')
      local lane = top[1]
      if not lane then return nil end
      local t = lane_tenant(p, lane)
      if cap > 0 and busy(t) >= cap then
        redis.call('ZREM', L, lane)
        park(t, lane)
      else
        local e, sc = lane_head(lane)
        if not e then
          redis.call('ZREM', L, lane)
        elseif sc > tonumber(top[2]) then
          redis.call('ZADD', L, sc, lane)
        else
          return lane, t
        end
      end
    end
  end

  -- Takes up to r jobs of partition P (their lane entries); P.state says
  -- what is left: 'live' (more ready), 'empty' or 'parked'.
  local function visit(P, r)
    local p = P.name
    local ids
    if P.grouped then
      ids = {}
      while #ids < r do
        local lane, t = pick(p)
        if not lane then break end
        local got = pop(lane, 1)
        if got[1] then
          ids[#ids + 1] = got[1]
          took(t, 1)
          if cap > 0 and busy(t) >= cap then
            redis.call('ZREM', lanes_of(p), lane)
            park(t, lane)
          end
        end
      end
      if #ids < r then P.state = 'empty' else P.state = 'live'; P.unsure = true end
    else
      if cap > 0 then
        local room = cap - busy(p)
        if room <= 0 then
          park(p, p)
          P.state = 'parked'
          return {}
        end
        if room < r then r = room end
      end
      local more
      ids, more = pop(p, r)
      if count then took(p, #ids) end
      if not more then
        P.state = 'empty'
      elseif cap > 0 and busy(p) >= cap then
        park(p, p)
        P.state = 'parked'
      else
        P.state = 'live'
      end
    end
    if ids[1] then
      tick = tick + 1
      P.tick = tick
    end
    return ids
  end

  -- Partitions of a ring page, with what a visit needs to know.
  local function load(names)
    local g = bulk('SMISMEMBER', {GRP}, names)
    local out = {}
    local need = {}
    for i, p in ipairs(names) do
      out[i] = {name = p, grouped = g[i] == 1}
      seen[#seen + 1] = out[i]
      if cap > 0 and g[i] == 0 and runs[p] == nil then need[#need + 1] = p end
    end
    if #need > 0 then
      local r = bulk('HMGET', {RUN}, need)
      for i, p in ipairs(need) do runs[p] = tonumber(r[i] or '0') end
    end
    return out
  end

  local A = {}
  local page = redis.call('ZRANGE', RING, 0, R - 1, 'WITHSCORES')
  if #page == 0 then return order end
  local names, last = {}, nil
  for i = 1, #page, 2 do
    names[#names + 1] = page[i]
    last = page[i + 1]
  end
  if #names < R then
    A = load(names)
  else
    -- As many partitions ready as jobs wanted: one job each, reading on
    -- while partitions give none.
    while R > 0 do
      for _, P in ipairs(load(names)) do
        if R == 0 then break end
        local ids = visit(P, 1)
        if #ids > 0 then
          R = R - 1
          order[#order + 1] = ids[1]
        end
        if P.state == 'live' then A[#A + 1] = P end
      end
      if R == 0 then break end
      page = redis.call('ZRANGE', RING, '(' .. last, '+inf', 'BYSCORE', 'LIMIT', 0, R, 'WITHSCORES')
      if #page == 0 then break end
      names = {}
      for i = 1, #page, 2 do
        names[#names + 1] = page[i]
        last = page[i + 1]
      end
    end
  end
  -- Every ready partition is in A: whole turns of each, then one more
  -- from the first few.
  while R > 0 and #A > 0 do
    if R >= #A then
      local r = math.floor(R / #A)
      local got, live = {}, {}
      for i, P in ipairs(A) do
        got[i] = visit(P, r)
        R = R - #got[i]
        if P.state == 'live' then live[#live + 1] = P end
      end
      -- In turn order: the first job of each, then the second of each...
      for j = 1, r do
        for i = 1, #got do
          if got[i][j] then order[#order + 1] = got[i][j] end
        end
      end
      A = live
    else
      local live = {}
      for _, P in ipairs(A) do
        if R > 0 then
          local ids = visit(P, 1)
          if #ids > 0 then
            R = R - 1
            order[#order + 1] = ids[1]
          end
        end
        if P.state == 'live' then live[#live + 1] = P end
      end
      A = live
    end
  end

  -- A grouped partition whose last visit took all it asked for may have
  -- nothing more.
  for _, P in ipairs(seen) do
    if P.state == 'live' and P.unsure and not pick(P.name) then P.state = 'empty' end
  end
  for lane, n in pairs(ghosts) do
    if redis.call('HINCRBY', TOMB, lane, -n) <= 0 then redis.call('HDEL', TOMB, lane) end
  end
  -- The ring: partitions served go to the back in the order of their last
  -- turn; empty and parked ones leave.
  local out, live = {}, {}
  for _, P in ipairs(seen) do
    if P.state == 'live' then
      if P.tick then live[#live + 1] = P end
    elseif P.state then
      out[#out + 1] = P.name
    end
  end
  if #out > 0 then bulk('ZREM', {RING}, out) end
  if #live > 0 then
    table.sort(live, function(a, b) return a.tick < b.tick end)
    local s0 = seq_take(#live)
    local args = {}
    for i, P in ipairs(live) do
      args[2 * i - 1] = s0 + i
      args[2 * i] = P.name
    end
    bulk('ZADD', {RING}, args, 2)
  end
  -- Parked lanes, and the running counts (BIG added for a tenant parked
  -- now).
  for _, t in ipairs(nlist) do
    bulk('SADD', {parked_key(t)}, newly[t])
    if running(t) < BIG then took(t, BIG) end
  end
  if count then
    for _, t in ipairs(tlist) do
      if claimed[t] ~= 0 then redis.call('HINCRBY', RUN, t, claimed[t]) end
    end
  end
  if #order == 0 then return order end
  local args = {}
  local at = held_value(now, count)
  for i, e in ipairs(order) do
    args[2 * i - 1] = entry_id(e)
    args[2 * i] = at
  end
  bulk('HSET', {held_key(c)}, args, 2)
  return order
end

-- The consumers waiting for work -- blocked in a claim that found none,
-- until the end of that claim's wait -- soonest ending wait first, each as
-- {id, jobs it wants, its cap}. Registrations whose wait ended, or whose
-- lease lapsed, are dropped on the way.
local function waiting()
  local out = {}
  local ws = redis.call('ZRANGE', WAITING, 0, -1, 'WITHSCORES')
  local t = server_ms()
  for i = 1, #ws, 2 do
    local c, wait_end = ws[i], tonumber(ws[i + 1])
    local want = redis.call('HGET', WANTS, c)
    if wait_end > t and want and lease_ok(c) then
      local max, cap = string.match(want, '^(%d+) (%d+)$')
      out[#out + 1] = {c, tonumber(max), tonumber(cap)}
    else
      redis.call('ZREM', WAITING, c)
      redis.call('HDEL', WANTS, c)
    end
  end
  return out
end

-- Pushes jobs (lane entries) to waiting consumer w's hand-off list, where
-- its blocked read finds them; it waits on for the rest of what it wants.
local function hand(w, rows)
  local c, max, cap = w[1], w[2], w[3]
  bulk('RPUSH', {handoff_key(c)}, rows)
  if #rows >= max then
    redis.call('ZREM', WAITING, c)
    redis.call('HDEL', WANTS, c)
  else
    redis.call('HSET', WANTS, c, (max - #rows) .. ' ' .. cap)
  end
end

-- Hands claimable jobs to the consumers waiting for work: each gets what
-- its own claim would take. So a job enqueued while a worker waits reaches
-- it in the same round trip.
local function handoff(now)
  for _, w in ipairs(waiting()) do
    if redis.call('EXISTS', RING) == 0 then return end
    local rows = take(w[1], w[2], w[3], now)
    if #rows > 0 then hand(w, rows) end
  end
end
