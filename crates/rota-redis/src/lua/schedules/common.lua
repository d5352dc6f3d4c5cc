-- The helpers of the schedule functions: the library is this file, then
-- each function's body (lease.lua, write.lua, commit.lua, shard.lua,
-- heartbeat.lua) registered as rota_sched_<version>_<name>; each call
-- starts with setup().
--
-- Every function but heartbeat works on one shard, whose keys all share
-- the hash tag {s:<n>}: KEYS[1..6] are the shard's fixed keys, in the
-- order below; each function's own keys follow them. ARGV[1] is the
-- shard's base, "<prefix>:{s:<n>}:", and ARGV[2] names the operation.
-- Keys a function can only name once it has read something -- the index
-- of a tenant found in a stored schedule -- are derived from the base;
-- they carry its hash tag, so they are in the shard's slot like the rest.
--
-- The shard's schedules are one hash, SCHEDULES: field the id, value
-- "<version> <tenant> <stored JSON>" (ids and tenants hold no space; the
-- JSON is Schedule::to_stored's, which the functions never parse). A
-- schedule's due instant is its score in DUE, absent when it has none.
-- A history entry: "<occurrence ms> <job id or -> <at ms> <record JSON>",
-- newest first; the prefix is what the functions match and keep, so that
-- they never parse JSON.
local LEASE, DUE, OUTBOX, INBOX, META, SCHEDULES
local FIXED = 6
local base

local function setup(keys, argv)
  LEASE, DUE, OUTBOX, INBOX, META, SCHEDULES = keys[1], keys[2], keys[3], keys[4], keys[5], keys[6]
  base = argv[1]
end

local function tenant_key(t) return base .. 't:' .. t end

-- An integer as text (Lua would write one of over 14 digits rounded).
local function int(x) return string.format('%d', x) end

-- Whether `token` ("<epoch> <holder>") is the shard's live lease. The
-- lease key lives only while the lease does (its TTL), and each grant
-- writes its own epoch, which is never granted again: an equal value is
-- the current grant, not lapsed.
local function lease_ok(token) return redis.call('GET', LEASE) == token end

-- The version and tenant of a stored schedule (nil for none).
local function head(stored)
  if not stored then return nil end
  return string.match(stored, '^(%d+) (%S+) ')
end

-- Most arguments given to one command (Lua's stack is bounded).
local CHUNK = 1000

-- Calls `cmd` on `key` with `args`, a chunk at a time (CHUNK is even,
-- so pairs stay whole).
local function each_chunk(cmd, key, args)
  local n = #args
  local i = 1
  while i <= n do
    local last = math.min(i + CHUNK - 1, n)
    redis.call(cmd, key, unpack(args, i, last))
    i = last + 1
  end
end

-- The stored values of schedules `ids` (id -> value, false when there is
-- none), read a chunk of ids at a time.
local function read_stored(ids)
  local stored = {}
  for c = 1, #ids, CHUNK do
    local got = redis.call('HMGET', SCHEDULES, unpack(ids, c, math.min(c + CHUNK - 1, #ids)))
    for k = 1, #got do stored[ids[c + k - 1]] = got[k] end
  end
  return stored
end

-- Writes of schedules gathered and made a few commands at a time: the
-- stored values, the due index and the tenants' indexes. One schedule
-- may be put once per batch (`put` says which are).
local function batch() return {sets = {}, due = {}, undue = {}, tenants = {}, put = {}} end

-- Puts schedule `id` at version `v` into batch `b`: `old` is what is
-- stored (false for none), `due` its due ms ('' for none). Returns the
-- value it will store.
local function put(b, id, old, v, due, tenant, json)
  local value = v .. ' ' .. tenant .. ' ' .. json
  b.put[id] = true
  b.sets[#b.sets + 1] = id
  b.sets[#b.sets + 1] = value
  local _, was = head(old)
  if was ~= tenant then
    if was then redis.call('ZREM', tenant_key(was), id) end
    local ids = b.tenants[tenant]
    if not ids then
      ids = {}
      b.tenants[tenant] = ids
    end
    ids[#ids + 1] = 0
    ids[#ids + 1] = id
  end
  if due == '' then
    b.undue[#b.undue + 1] = id
  else
    b.due[#b.due + 1] = due
    b.due[#b.due + 1] = id
  end
  return value
end

-- Makes the writes of batch `b`.
local function flush(b)
  each_chunk('HSET', SCHEDULES, b.sets)
  each_chunk('ZADD', DUE, b.due)
  each_chunk('ZREM', DUE, b.undue)
  for tenant, ids in pairs(b.tenants) do each_chunk('ZADD', tenant_key(tenant), ids) end
end
