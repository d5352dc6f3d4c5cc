-- The helpers of the job functions: the library is this file, take.lua,
-- then each function's body (enqueue.lua, claim.lua, ...) registered as
-- rota_jobs_<version>_<name>; each call starts with setup().
--
-- KEYS[1..18] are the queue's fixed keys, in the order below; each
-- function's own keys follow them. ARGV[1] is the queue's base,
-- "<prefix>:{j:<queue>}:".
-- Keys a function can only name once it has read something -- the job of an id
-- popped from a lane, a lane of a partition taken from the ring, the keys of
-- a consumer found in the registry -- are derived from the base; they carry
-- its hash tag, so they live on the queue's node like the rest.
--
-- A job's hash: j (the job's JSON as accepted), p (partition), t (tenant,
-- absent when it is the partition), sc (its score: priority, then order),
-- m (max attempts, if its own), x (1 once its cancellation was asked for
-- while it ran), s (state; absent while queued or running,
-- and running means held: in a consumer's held hash), a (attempt, absent
-- for 1), due (when due, once it changed), f (finished at), r (result), rs
-- (reason), h<n> (each finished attempt, n growing).
--
-- Queued jobs wait in lanes: lists of "<score> <id> <attempt> <due or ->
-- <job JSON as stored>" (all a claim answers with, so it reads no hash),
-- oldest first, one per partition, tenant and priority. The lane of a partition's own tenant at
-- priority 0 -- the usual case, a partition per tenant -- is named after
-- the partition; any other is "<p>:<t>:<priority>", and its partition is
-- grouped: its lanes wait in lanes:<p>, scored by their first job, for a
-- claim to pick the best.
local RING, SEQ, SCHED, PSCHED, RUN, GRP, WAITING, WANTS, FINISHED, FIN, DEAD, IKEYS,
  KOF, CONSUMERS, TIDY, TOMB, CAPPED, POLICY
local FIXED = 18
local base

local function jk(id) return base .. 'job:' .. id end
local function lane_of(p, t, prio)
  if t == p and prio == 0 then return p end
  return p .. ':' .. t .. ':' .. prio
end
local function lane_key(lane) return base .. 'ready:' .. lane end
-- The tenant of a lane of partition p.
local function lane_tenant(p, lane)
  if lane == p then return p end
  return string.match(lane, '^[^:]+:(.+):[^:]+$')
end
local function lanes_of(p) return base .. 'lanes:' .. p end
local function parked_key(t) return base .. 'parked:' .. t end
local function held_key(c) return base .. 'held:' .. c end
local function handoff_key(c) return base .. 'handoff:' .. c end
-- The held jobs of consumer c whose cancellation was asked for.
local function cancels_key(c) return base .. 'cancels:' .. c end

-- Added to a tenant's running count while it is parked (at its cap, its
-- lanes out of the claims' way): a settle that finds the count above it
-- knows a slot freed for a parked tenant.
local BIG = 1099511627776 -- 2^40

-- A job's score: priority (clamped, so the score stays exact in a double),
-- then order; and back.
local function clamp(prio)
  return math.max(-4000, math.min(4000, tonumber(prio) or 0))
end
local function score(prio, seq) return -prio * 1e12 + seq end
local function prio_of(sc)
  local prio = -math.floor(tonumber(sc) / 1e12)
  if prio == 0 then return 0 end
  return prio
end
-- An entry of a lane, and its parts.
local function entry(sc, id, a, due, json)
  return string.format('%d', sc) .. ' ' .. id .. ' ' .. a .. ' ' .. due .. ' ' .. json
end
local function entry_id(e)
  local at = string.find(e, ' ', 1, true) + 1
  return string.sub(e, at, string.find(e, ' ', at, true) - 1)
end
local function entry_score(e) return tonumber(string.sub(e, 1, string.find(e, ' ', 1, true) - 1)) end

-- Takes n numbers from the queue's counter (job order, turns, history);
-- returns the one before the first.
local function seq_take(n)
  if n <= 0 then return 0 end
  return redis.call('INCRBY', SEQ, n) - n
end

-- An integer as text (Lua would write one of over 14 digits rounded;
-- numbers given to redis.call are exact).
local function int(x) return string.format('%d', x) end

-- Runs `cmd` on the fixed arguments `pre` (the key, options; at most
-- two) and then `args`, in chunks Lua's stack can take; `step` keeps pairs
-- together. Returns the chunks' answers, concatenated.
local CHUNK = 1000
local function bulk(cmd, pre, args, step)
  local n = #args
  local size = CHUNK * (step or 1)
  if n <= size then
    if #pre == 1 then return redis.call(cmd, pre[1], unpack(args)) end
    if #pre == 2 then return redis.call(cmd, pre[1], pre[2], unpack(args)) end
    return redis.call(cmd, unpack(args))
  end
  local out = {}
  for i = 1, n, size do
    local a = {}
    for _, v in ipairs(pre) do a[#a + 1] = v end
    for j = i, math.min(i + size - 1, n) do a[#a + 1] = args[j] end
    local r = redis.call(cmd, unpack(a))
    if type(r) == 'table' then
      for _, v in ipairs(r) do out[#out + 1] = v end
    end
  end
  return out
end

-- Redis's own clock, in ms: what a consumer's wait is measured by, like its
-- lease (a key TTL) -- real time, whatever clock due times are kept by.
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function lease_ok(consumer)
  return redis.call('EXISTS', base .. 'lease:' .. consumer) == 1
end

-- A holder is "<name>#<epoch>" for a named lease: the history names the
-- worker by its lease name.
local function attempt_json(attempt, worker, started, finished, outcome)
  worker = string.match(worker, '^[^#]*')
  return string.format(
    '{"attempt":%d,"worker":"%s","started_at_ms":%d,"finished_at_ms":%d,"outcome":{"outcome":"%s"}}',
    attempt, worker, started, finished, outcome)
end

-- Running jobs are counted per tenant (RUN) once a consumer with a tenant
-- cap registered (CAPPED): a queue without caps spares a write per job on
-- claim and on settle. A held job's value in held:<c> is its claim time,
-- with '+' when its tenant's count counted it (so only those are counted
-- down; jobs already running when counting began are never counted).
local function counting() return redis.call('EXISTS', CAPPED) == 1 end
local function held_value(now, counted)
  if counted then return int(now) .. '+' end
  return now
end
local function held_at(v) return tonumber(string.match(v, '^%d+')) end
local function held_counted(v) return string.sub(v, -1) == '+' end

-- The consumer that holds job id (then it runs), or nil.
local function holder_of(id)
  for _, c in ipairs(redis.call('SMEMBERS', CONSUMERS)) do
    if redis.call('HEXISTS', held_key(c), id) == 1 then return c end
  end
  return nil
end

-- Partitions that become ready join the ring at its front, ahead of those
-- taking turns, in the order given: a tenant that was idle, however many
-- others have backlogs, is served at the next claim, then takes its turns
-- at the back. (A partition at the front gets one job per turn like any
-- other; only one that empties and comes back is served first again.) One
-- already in the ring keeps its turn, unless `emptied` says it ran dry
-- since (a claim that took a lane's last job without knowing it leaves the
-- partition in the ring; the next claim to come by drops it).
local function ring_join(parts, emptied)
  if #parts == 0 then return end
  local head = tonumber(redis.call('ZRANGE', RING, 0, 0, 'WITHSCORES')[2] or '0')
  local first = math.min(head, 0) - #parts
  local keep, reset = {}, {}
  for i, p in ipairs(parts) do
    local args = keep
    if emptied and emptied[p] then args = reset end
    args[#args + 1] = first + i - 1
    args[#args + 1] = p
  end
  if #keep > 0 then bulk('ZADD', {RING, 'NX'}, keep, 2) end
  if #reset > 0 then bulk('ZADD', {RING}, reset, 2) end
end

local function is_parked(t)
  return tonumber(redis.call('HGET', RUN, t) or '0') >= BIG
end

-- The first entry of a lane and its score, or nil.
local function lane_head(lane)
  local e = redis.call('LINDEX', lane_key(lane), 0)
  if e then return e, entry_score(e) end
end

-- Jobs made claimable by this call, gathered to write each lane, the
-- grouped partitions' lanes and the ring once: job id of partition p and
-- tenant t, score sc, at attempt a (due `due`, or '-' for the time in its
-- JSON). A job given back (`front`) goes ahead of its lane; others behind.
local ready
local function ready_add(id, p, t, sc, a, due, json, front)
  local lane = lane_of(p, t, prio_of(sc))
  local l = ready.lanes[lane]
  if not l then
    l = {p = p, back = {}, best = sc}
    ready.lanes[lane] = l
    ready.order[#ready.order + 1] = lane
  elseif sc < l.best then
    l.best = sc
  end
  local list = l.back
  if front then
    list = l.front or {}
    l.front = list
  end
  list[#list + 1] = entry(sc, id, a, due, json)
  ready.n = ready.n + 1
end

local function ready_flush()
  if ready.n == 0 then return 0 end
  local n = ready.n
  local plist, seen, emptied, other = {}, {}, {}, false
  for _, lane in ipairs(ready.order) do
    local l = ready.lanes[lane]
    local back, front = l.back, l.front or {}
    local key, len = lane_key(lane), 0
    for i = 1, #back, CHUNK do
      len = redis.call('RPUSH', key, unpack(back, i, math.min(i + CHUNK - 1, #back)))
    end
    -- Given back in order: the first pushed last, to end up first.
    for i = #front, 1, -CHUNK do
      local chunk = {}
      for j = i, math.max(i - CHUNK + 1, 1), -1 do chunk[#chunk + 1] = front[j] end
      len = redis.call('LPUSH', key, unpack(chunk))
    end
    local p = l.p
    -- The push answers the lane's length: all of it new, the lane was dry.
    if lane == p and len == #back + #front then emptied[p] = true end
    if not seen[p] then
      seen[p] = true
      plist[#plist + 1] = p
    end
    if lane ~= p then other = true end
  end
  -- A partition with another lane than its own tenant's at priority 0 is
  -- grouped: its lanes wait in lanes:<p>, by their first job.
  if other or redis.call('SCARD', GRP) > 0 then
    local parts = {}
    for _, lane in ipairs(ready.order) do
      local p = ready.lanes[lane].p
      parts[p] = parts[p] or {}
      table.insert(parts[p], lane)
    end
    local grouped = bulk('SMISMEMBER', {GRP}, plist)
    for i, p in ipairs(plist) do
      local lanes = parts[p]
      local g = grouped[i] == 1
      if not g and (#lanes > 1 or lanes[1] ~= p) then
        redis.call('SADD', GRP, p)
        g = true
        local own = false
        for _, lane in ipairs(lanes) do
          if lane == p then own = true end
        end
        if not own and not is_parked(p) then
          local e, sc = lane_head(p)
          if e then redis.call('ZADD', lanes_of(p), sc, p) end
        end
      end
      if g then
        local args = {}
        for _, lane in ipairs(lanes) do
          args[#args + 1] = ready.lanes[lane].best
          args[#args + 1] = lane
        end
        bulk('ZADD', {lanes_of(p), 'LT'}, args, 2)
      end
    end
  end
  ring_join(plist, emptied)
  ready = {lanes = {}, order = {}, n = 0}
  return n
end

-- Scheduled jobs gathered by this call.
local later
local function later_add(id, p, due)
  local items = later.items
  items[#items + 1] = due
  items[#items + 1] = id
  if not later.parts[p] then
    later.parts[p] = 0
    later.plist[#later.plist + 1] = p
  end
  later.parts[p] = later.parts[p] + 1
end
local function later_flush()
  if #later.items == 0 then return end
  bulk('ZADD', {SCHED}, later.items, 2)
  for _, p in ipairs(later.plist) do
    redis.call('HINCRBY', PSCHED, p, later.parts[p])
  end
  later = {items = {}, parts = {}, plist = {}}
end

-- Dead jobs gathered by this call, in order.
local buried
local function bury(jkey, id, reason, now, hist, att)
  redis.call('HSET', jkey, 's', 'dead', 'f', int(now), 'rs', reason, hist, att)
  buried[#buried + 1] = id
end
local function buried_flush()
  if #buried == 0 then return end
  local s0 = seq_take(#buried)
  local args = {}
  for i, id in ipairs(buried) do
    args[2 * i - 1] = s0 + i
    args[2 * i] = id
  end
  bulk('ZADD', {DEAD}, args, 2)
  buried = {}
end

-- Finished jobs gathered by this call, per state. The finished list
-- holds "<finished at> <state> <id>" in the order jobs finished, so
-- retention knows age and state without a read.
local done
-- (`at`: the finishing instant as text.)
local function done_add(state, id, at)
  local items = done.items
  items[#items + 1] = at .. ' ' .. state .. ' ' .. id
  if not done.states[state] then
    done.states[state] = 0
    done.slist[#done.slist + 1] = state
  end
  done.states[state] = done.states[state] + 1
end
local function done_flush()
  if #done.items == 0 then return end
  bulk('RPUSH', {FINISHED}, done.items)
  for _, s in ipairs(done.slist) do
    redis.call('HINCRBY', FIN, s, done.states[s])
  end
  done = {items = {}, states = {}, slist = {}}
end

-- A held job whose cancellation was asked for (x set) ends cancelled
-- instead of going back to the queue, with attempt `att` (if it ran) as
-- history field `hist`. (Call done_flush after.)
local function cancel_held(jkey, id, now, hist, att)
  local fields = {'s', 'cancelled', 'f', int(now), 'rs', 'cancelled while it ran'}
  if hist then
    fields[#fields + 1] = hist
    fields[#fields + 1] = att
  end
  redis.call('HSET', jkey, unpack(fields))
  redis.call('HDEL', jkey, 'x')
  done_add('cancelled', id, int(now))
end

-- Parked lanes of tenant t come back: into their grouped partition's
-- lanes, and their partitions into the ring. Returns whether any did.
local function unpark(t)
  redis.call('HINCRBY', RUN, t, -BIG)
  local back, seen = {}, {}
  for _, lane in ipairs(redis.call('SMEMBERS', parked_key(t))) do
    local e, sc = lane_head(lane)
    if e then
      local p = string.match(lane, '^[^:]+')
      if redis.call('SISMEMBER', GRP, p) == 1 then
        redis.call('ZADD', lanes_of(p), 'LT', sc, lane)
      end
      if not seen[p] then
        seen[p] = true
        back[#back + 1] = p
      end
    end
  end
  redis.call('DEL', parked_key(t))
  ring_join(back)
  return #back > 0
end

-- Jobs that stopped running, per tenant.
local stopped
local function stop(t)
  local n = stopped.counts[t]
  if not n then
    n = 0
    stopped.tlist[#stopped.tlist + 1] = t
  end
  stopped.counts[t] = n + 1
end
-- Writes the running counts down; a tenant that was parked comes back.
-- Returns whether work came back.
local function stopped_flush()
  local back = false
  for _, t in ipairs(stopped.tlist) do
    local v = redis.call('HINCRBY', RUN, t, -stopped.counts[t])
    if v >= BIG and unpark(t) then back = true end
  end
  stopped = {counts = {}, tlist = {}}
  return back
end

-- Deletes jobs and frees their idempotency keys.
local function forget(ids)
  if #ids == 0 then return end
  local keys = bulk('HMGET', {KOF}, ids)
  local kid, kname = {}, {}
  for i = 1, #ids do
    if keys[i] then
      kid[#kid + 1] = ids[i]
      kname[#kname + 1] = keys[i]
    end
  end
  if #kname > 0 then
    local owners = bulk('HMGET', {IKEYS}, kname)
    local free = {}
    for i = 1, #kname do
      if owners[i] == kid[i] then free[#free + 1] = kname[i] end
    end
    if #free > 0 then bulk('HDEL', {IKEYS}, free) end
    bulk('HDEL', {KOF}, kid)
  end
  local jobs = {}
  for i, id in ipairs(ids) do jobs[i] = jk(id) end
  bulk('DEL', {}, jobs)
end

-- The queue's policy (POLICY: keep, age, max, as JobStore::set_policy
-- wrote them), each field the caller's default where it was never set.
local function policy(keep, age, max)
  local v = redis.call('HMGET', POLICY, 'keep', 'age', 'max')
  return tonumber(v[1]) or keep, tonumber(v[2]) or age, tonumber(v[3]) or max
end

-- Deletes finished jobs beyond the retention, oldest first: those over
-- `keep`, then those finished more than `age` ms ago; at most CHUNK per
-- call (each settle adds no more than it settles, so a surplus shrinks).
local function retain(keep, age, now)
  local n = math.max(0, math.min(redis.call('LLEN', FINISHED) - keep, CHUNK))
  local cutoff = now - age
  while n < CHUNK do
    local page = redis.call('LRANGE', FINISHED, n, math.min(n + 15, CHUNK - 1))
    local young = false
    for _, m in ipairs(page) do
      if tonumber(string.match(m, '^%d+')) >= cutoff then
        young = true
        break
      end
      n = n + 1
    end
    if young or #page < 16 then break end
  end
  if n == 0 then return end
  local ids, per, slist = {}, {}, {}
  for i, m in ipairs(redis.call('LPOP', FINISHED, n)) do
    local s, id = string.match(m, '^%d+ (%a+) (.+)$')
    ids[i] = id
    if not per[s] then
      per[s] = 0
      slist[#slist + 1] = s
    end
    per[s] = per[s] + 1
  end
  for _, s in ipairs(slist) do
    if redis.call('HINCRBY', FIN, s, -per[s]) <= 0 then redis.call('HDEL', FIN, s) end
  end
  forget(ids)
end

-- Starts a call: the queue's keys, and nothing gathered.
local function setup(keys, args)
  RING, SEQ, SCHED, PSCHED, RUN, GRP, WAITING, WANTS, FINISHED, FIN, DEAD, IKEYS, KOF,
    CONSUMERS, TIDY, TOMB, CAPPED, POLICY = unpack(keys, 1, FIXED)
  base = args[1]
  ready = {lanes = {}, order = {}, n = 0}
  later = {items = {}, parts = {}, plist = {}}
  buried = {}
  done = {items = {}, states = {}, slist = {}}
  stopped = {counts = {}, tlist = {}}
end
