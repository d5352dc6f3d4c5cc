-- Changes from anywhere (the API, the CLI): compare-and-set on the
-- version, not fenced.
-- ARGV[2] the operation:
--   insert: ARGV[3..7] id, version, due ms ('' for none), tenant, stored
--     JSON. Returns 1, or 0 when the id is taken (nothing written).
--   replace: ARGV[3..7] id, the version read, due, tenant, JSON (of the
--     next version). Returns the new version, 0 when the stored one moved,
--     -1 when there is none (nothing written).
--   upsert: 5 arguments per schedule from ARGV[3]: id, version, due,
--     tenant, JSON. A schedule that exists is replaced whole, its version
--     bumped (never reused, so that a read from before the upsert cannot
--     be committed over it); of an id given more than once, the last is
--     written. Returns the number of arguments' schedules taken.
--   delete: KEYS[FIXED+1] the history; ARGV[3] id. Returns 1 if it
--     existed.
local op = ARGV[2]
if op == 'insert' then
  local id = ARGV[3]
  if redis.call('HEXISTS', SCHEDULES, id) == 1 then return 0 end
  local b = batch()
  put(b, id, false, ARGV[4], ARGV[5], ARGV[6], ARGV[7])
  flush(b)
  return 1
elseif op == 'replace' then
  local id = ARGV[3]
  local old = redis.call('HGET', SCHEDULES, id)
  local v = head(old)
  if not v then return -1 end
  if v ~= ARGV[4] then return 0 end
  local next = int(tonumber(v) + 1)
  local b = batch()
  put(b, id, old, next, ARGV[5], ARGV[6], ARGV[7])
  flush(b)
  return tonumber(next)
elseif op == 'upsert' then
  -- Where each id is last given, and what is stored of each, in one read.
  local last, ids = {}, {}
  for i = 3, #ARGV, 5 do
    local id = ARGV[i]
    if not last[id] then ids[#ids + 1] = id end
    last[id] = i
  end
  local stored = read_stored(ids)
  local b = batch()
  local n = 0
  for i = 3, #ARGV, 5 do
    n = n + 1
    local id = ARGV[i]
    if last[id] == i then
      local old = stored[id]
      local v = head(old)
      if v then v = int(tonumber(v) + 1) else v = ARGV[i + 1] end
      put(b, id, old, v, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
    end
  end
  flush(b)
  return n
elseif op == 'delete' then
  local id = ARGV[3]
  local _, t = head(redis.call('HGET', SCHEDULES, id))
  if not t then return 0 end
  redis.call('HDEL', SCHEDULES, id)
  redis.call('DEL', KEYS[FIXED + 1])
  redis.call('ZREM', DUE, id)
  redis.call('ZREM', tenant_key(t), id)
  return 1
end
return redis.error_reply('unknown write operation ' .. tostring(op))
