-- Shared by the job scripts (prepended to each; take.lua follows it where
-- jobs are claimed).
--
-- KEYS[1..16] are the queue's fixed keys, in the order below; each script's
-- own keys follow them. ARGV[1] is the queue's base, "<prefix>:{j:<queue>}:".
-- Keys a script can only name once it has read something -- the job of an id
-- popped from a lane, the lane of a partition taken from the ring, the keys
-- of a consumer found in the registry -- are derived from the base; they
-- carry its hash tag, so they live on the queue's node like the rest.
local RING, SEQ, SCHED, PSCHED, RUN, GRP, LANES, WAITING, WANTS, FINISHED, FIN, DEAD,
  IKEYS, KOF, CONSUMERS, TIDY =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9],
  KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14], KEYS[15], KEYS[16]
local FIXED = 16
local base = ARGV[1]

local function jk(id) return base .. 'job:' .. id end
-- The lane of tenant t in partition p: the tenant's queued jobs there. A
-- partition's own tenant (the default: one partition per tenant) has the
-- short name.
local function lane_key(p, t)
  if t == p then return base .. 'ready:' .. p end
  return base .. 'ready:' .. p .. ':' .. t
end
local function lane_name(p, t)
  if t == p then return p end
  return p .. ':' .. t
end
local function lanes_of(p) return base .. 'lanes:' .. p end
local function parked_key(t) return base .. 'parked:' .. t end
local function held_key(c) return base .. 'held:' .. c end
local function handoff_key(c) return base .. 'handoff:' .. c end

-- Added to a tenant's running count while it is parked (at its cap, its
-- lanes out of the claims' way): a settle that finds the count above it
-- knows a slot freed for a parked tenant.
local BIG = 1099511627776 -- 2^40
-- Turns of partitions that just became ready: below every turn taken by a
-- partition served before, so they are served first, in arrival order.
local FRESH = -1125899906842624 -- -2^50

-- Priority is clamped so that the ready score (priority, then order)
-- stays exact in a double.
local function score(prio, seq)
  prio = math.max(-4000, math.min(4000, tonumber(prio) or 0))
  return -prio * 1e12 + tonumber(seq)
end

-- Takes n numbers from the queue's counter (job order, turns, history);
-- returns the one before the first.
local function seq_take(n)
  if n <= 0 then return 0 end
  return redis.call('INCRBY', SEQ, n) - n
end

-- Integers as Redis arguments: Lua would print a number of more than 14
-- digits (a fresh turn, a score) rounded.
local function int(x) return string.format('%d', x) end

-- Runs one command per chunk of `args` after the fixed arguments `pre`
-- (the key, options), so a big batch never overflows Lua's stack; `step`
-- keeps pairs together. Returns the chunks' answers, concatenated.
local CHUNK = 1000
local function bulk(cmd, pre, args, step)
  local out = {}
  local n = #args
  local size = CHUNK * (step or 1)
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

local function lease_ok(consumer)
  return redis.call('EXISTS', base .. 'lease:' .. consumer) == 1
end

local function attempt_json(attempt, worker, started, finished, outcome)
  return string.format(
    '{"attempt":%d,"worker":"%s","started_at_ms":%d,"finished_at_ms":%d,"outcome":{"outcome":"%s"}}',
    attempt, worker, started, finished, outcome)
end

-- Partitions join the ring ahead of those taking turns, in the order
-- given; one already in it keeps its turn.
local function ring_join(parts)
  if #parts == 0 then return end
  local s0 = seq_take(#parts)
  local args = {}
  for i, p in ipairs(parts) do
    args[#args + 1] = int(FRESH + s0 + i)
    args[#args + 1] = p
  end
  bulk('ZADD', {RING, 'NX'}, args, 2)
end

-- Jobs made claimable by this script, gathered to write each lane, the
-- lane registry, the grouped partitions' lanes and the ring once.
local ready = {lanes = {}, order = {}, n = 0}
local function ready_add(id, p, t, sc)
  local name = lane_name(p, t)
  local l = ready.lanes[name]
  if not l then
    l = {p = p, t = t, items = {}, best = sc}
    ready.lanes[name] = l
    ready.order[#ready.order + 1] = name
  end
  l.items[#l.items + 1] = int(sc)
  l.items[#l.items + 1] = id
  if sc < l.best then l.best = sc end
  ready.n = ready.n + 1
end

local function is_parked(t)
  return tonumber(redis.call('HGET', RUN, t) or '0') >= BIG
end

local function ready_flush()
  if ready.n == 0 then return 0 end
  local n = ready.n
  local parts, plist, names = {}, {}, {}
  for _, name in ipairs(ready.order) do
    local l = ready.lanes[name]
    bulk('ZADD', {lane_key(l.p, l.t)}, l.items, 2)
    if not parts[l.p] then
      parts[l.p] = {}
      plist[#plist + 1] = l.p
    end
    table.insert(parts[l.p], l)
    names[#names + 1] = name
  end
  bulk('SADD', {LANES}, names)
  -- A partition holding lanes of other tenants than its own keeps them in
  -- lanes:<p>, by their first job, so a claim picks among them.
  local grouped = bulk('SMISMEMBER', {GRP}, plist)
  for i, p in ipairs(plist) do
    local ls = parts[p]
    local g = grouped[i] == 1
    if not g then
      local own, other = false, false
      for _, l in ipairs(ls) do
        if l.t == p then own = true else other = true end
      end
      if other then
        redis.call('SADD', GRP, p)
        g = true
        if not own and not is_parked(p) then
          local head = redis.call('ZRANGE', lane_key(p, p), 0, 0, 'WITHSCORES')
          if head[1] then redis.call('ZADD', lanes_of(p), head[2], p) end
        end
      end
    end
    if g then
      local args = {}
      for _, l in ipairs(ls) do
        args[#args + 1] = int(l.best)
        args[#args + 1] = l.t
      end
      bulk('ZADD', {lanes_of(p), 'LT'}, args, 2)
    end
  end
  ring_join(plist)
  ready = {lanes = {}, order = {}, n = 0}
  return n
end

-- Scheduled jobs gathered by this script.
local later = {items = {}, parts = {}, plist = {}}
local function later_add(id, p, due)
  later.items[#later.items + 1] = int(due)
  later.items[#later.items + 1] = id
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

-- Dead jobs gathered by this script, in order.
local buried = {}
local function bury(jkey, id, reason, now, extra)
  local fields = {'s', 'dead', 'f', int(now), 'rs', reason}
  for _, v in ipairs(extra or {}) do fields[#fields + 1] = v end
  redis.call('HSET', jkey, unpack(fields))
  buried[#buried + 1] = id
end
local function buried_flush()
  if #buried == 0 then return end
  local s0 = seq_take(#buried)
  local args = {}
  for i, id in ipairs(buried) do
    args[#args + 1] = int(s0 + i)
    args[#args + 1] = id
  end
  bulk('ZADD', {DEAD}, args, 2)
  buried = {}
end

-- Finished jobs gathered by this script, per state: the finished set's
-- members are "<state>:<id>", so retention knows a state without a read.
local done = {items = {}, states = {}, slist = {}}
local function done_add(state, id, now)
  done.items[#done.items + 1] = int(now)
  done.items[#done.items + 1] = state .. ':' .. id
  if not done.states[state] then
    done.states[state] = 0
    done.slist[#done.slist + 1] = state
  end
  done.states[state] = done.states[state] + 1
end
local function done_flush()
  if #done.items == 0 then return end
  bulk('ZADD', {FINISHED}, done.items, 2)
  for _, s in ipairs(done.slist) do
    redis.call('HINCRBY', FIN, s, done.states[s])
  end
  done = {items = {}, states = {}, slist = {}}
end

-- Parked lanes of tenant t come back: into their grouped partition's
-- lanes, and their partitions into the ring. Returns whether any did.
local function unpark(t)
  redis.call('HINCRBY', RUN, t, -BIG)
  local back = {}
  for _, p in ipairs(redis.call('SMEMBERS', parked_key(t))) do
    local head = redis.call('ZRANGE', lane_key(p, t), 0, 0, 'WITHSCORES')
    if head[1] then
      if redis.call('SISMEMBER', GRP, p) == 1 then
        redis.call('ZADD', lanes_of(p), 'LT', head[2], t)
      end
      back[#back + 1] = p
    end
  end
  redis.call('DEL', parked_key(t))
  ring_join(back)
  return #back > 0
end

-- Jobs that stopped running, per tenant.
local stopped = {counts = {}, tlist = {}}
local function stop(t)
  if not stopped.counts[t] then
    stopped.counts[t] = 0
    stopped.tlist[#stopped.tlist + 1] = t
  end
  stopped.counts[t] = stopped.counts[t] + 1
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
  for i, key in ipairs(keys) do
    if key then
      kid[#kid + 1] = ids[i]
      kname[#kname + 1] = key
    end
  end
  if #kname > 0 then
    local now_at = bulk('HMGET', {IKEYS}, kname)
    local free = {}
    for i, owner in ipairs(now_at) do
      if owner == kid[i] then free[#free + 1] = kname[i] end
    end
    if #free > 0 then bulk('HDEL', {IKEYS}, free) end
    bulk('HDEL', {KOF}, kid)
  end
  local jobs = {}
  for i, id in ipairs(ids) do jobs[i] = jk(id) end
  bulk('DEL', {}, jobs)
end

-- Deletes finished jobs beyond the retention, oldest first: those over
-- `keep`, then those finished more than `age` ms ago; at most CHUNK per
-- call (each settle adds no more than it settles, so a surplus shrinks).
local function retain(keep, age, now)
  local victims = {}
  local over = redis.call('ZCARD', FINISHED) - keep
  if over > 0 then
    victims = redis.call('ZRANGE', FINISHED, 0, math.min(over, CHUNK) - 1)
  end
  if #victims < CHUNK then
    local old = redis.call('ZRANGE', FINISHED, '-inf', '(' .. int(now - age), 'BYSCORE',
      'LIMIT', #victims, CHUNK - #victims)
    for _, m in ipairs(old) do victims[#victims + 1] = m end
  end
  if #victims == 0 then return end
  -- The victims are the lowest ranks, so one range removal takes them.
  redis.call('ZREMRANGEBYRANK', FINISHED, 0, #victims - 1)
  local ids, per, slist = {}, {}, {}
  for i, m in ipairs(victims) do
    local s, id = string.match(m, '^(%a+):(.+)$')
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
