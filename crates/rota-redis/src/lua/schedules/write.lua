-- Changes from anywhere (the API, the CLI): compare-and-set on the
-- version, not fenced.
-- ARGV[2] the operation:
--   insert: KEYS[FIXED+1] the schedule's hash; ARGV[3..7] id, version,
--     due ms ('' for none), tenant, JSON. Returns 1, or 0 when the id is
--     taken (nothing written).
--   replace: KEYS[FIXED+1] the hash; ARGV[3..7] id, the version read, due,
--     tenant, JSON (of the next version). Returns the new version, 0 when
--     the stored one moved, -1 when there is none (nothing written).
--   upsert: per schedule its hash in KEYS from FIXED+1, and 5 arguments
--     from ARGV[3]: id, version, due, tenant, JSON. A schedule that exists
--     is replaced whole, its version bumped (never reused, so that a read
--     from before the upsert cannot be committed over it). Returns the
--     number written.
--   delete: KEYS[FIXED+1] the hash, KEYS[FIXED+2] the history; ARGV[3]
--     id. Returns 1 if it existed.
local op = ARGV[2]
if op == 'insert' then
  local key = KEYS[FIXED + 1]
  if redis.call('EXISTS', key) == 1 then return 0 end
  put(key, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
  return 1
elseif op == 'replace' then
  local key = KEYS[FIXED + 1]
  local v = redis.call('HGET', key, 'v')
  if not v then return -1 end
  if v ~= ARGV[4] then return 0 end
  local next = int(tonumber(v) + 1)
  put(key, ARGV[3], next, ARGV[5], ARGV[6], ARGV[7])
  return tonumber(next)
elseif op == 'upsert' then
  local n = 0
  for i = 3, #ARGV, 5 do
    n = n + 1
    local key = KEYS[FIXED + n]
    local v = redis.call('HGET', key, 'v')
    if v then v = int(tonumber(v) + 1) else v = ARGV[i + 1] end
    put(key, ARGV[i], v, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
  end
  return n
elseif op == 'delete' then
  local key, id = KEYS[FIXED + 1], ARGV[3]
  local t = redis.call('HGET', key, 't')
  if not t then return 0 end
  redis.call('DEL', key, KEYS[FIXED + 2])
  redis.call('ZREM', DUE, id)
  redis.call('ZREM', tenant_key(t), id)
  return 1
end
return redis.error_reply('unknown write operation ' .. tostring(op))
