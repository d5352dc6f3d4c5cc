-- What the shard's owner reads and acknowledges, fenced by its lease.
-- ARGV[2] the operation, ARGV[3] the lease's token. Each returns {-1}
-- when the lease lapsed (nothing read or written), else {1, ...}:
--   due: ARGV[4] until ms, ARGV[5] limit. {1, then the id and the stored
--     value ("<version> <tenant> <JSON>") of each schedule due by then,
--     earliest first}.
--   next: {1, the earliest due ms} or {1} when none is due.
--   outbox: ARGV[4] limit. {1, members oldest first}.
--   dispatched: ARGV[4..] members to take out of the outbox. {1}.
--   replies: ARGV[4] limit. {1, replies removed so far, then the replies,
--     oldest first} (the seq of a reply is its index plus that count).
--   ack: ARGV[4] the seq of the last reply to remove. {1}.
local op = ARGV[2]
if not lease_ok(ARGV[3]) then return {-1} end
if op == 'due' then
  local limit = tonumber(ARGV[5])
  local out = {1}
  if limit <= 0 then return out end
  local ids = redis.call('ZRANGEBYSCORE', DUE, '-inf', ARGV[4], 'LIMIT', 0, limit)
  local stored = read_stored(ids)
  for _, id in ipairs(ids) do
    if stored[id] then
      out[#out + 1] = id
      out[#out + 1] = stored[id]
    end
  end
  return out
elseif op == 'next' then
  local first = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
  if #first == 0 then return {1} end
  return {1, first[2]}
elseif op == 'outbox' then
  local limit = tonumber(ARGV[4])
  if limit <= 0 then return {1} end
  local out = redis.call('ZRANGE', OUTBOX, 0, limit - 1)
  table.insert(out, 1, 1)
  return out
elseif op == 'dispatched' then
  for i = 4, #ARGV do redis.call('ZREM', OUTBOX, ARGV[i]) end
  return {1}
elseif op == 'replies' then
  local limit = tonumber(ARGV[4])
  local acked = tonumber(redis.call('HGET', META, 'acked') or '0')
  if limit <= 0 then return {1, acked} end
  local out = redis.call('LRANGE', INBOX, 0, limit - 1)
  table.insert(out, 1, acked)
  table.insert(out, 1, 1)
  return out
elseif op == 'ack' then
  local acked = tonumber(redis.call('HGET', META, 'acked') or '0')
  local n = tonumber(ARGV[4]) - acked + 1
  if n > 0 then
    local gone = redis.call('LPOP', INBOX, n)
    if gone then redis.call('HINCRBY', META, 'acked', #gone) end
  end
  return {1}
end
return redis.error_reply('unknown shard operation ' .. tostring(op))
