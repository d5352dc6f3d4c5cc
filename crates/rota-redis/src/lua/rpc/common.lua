-- Shared by the scripts below (prepended to each).
-- Reads an entry's payload and attempt; nil when it is gone. An entry
-- without its field m (added by hand) reads as an empty payload, plus a note
-- naming the fields it has, so that it is moved like any other, never lost.
local function entry(stream, id)
  local r = redis.call('XRANGE', stream, id, id)
  if #r == 0 then
    return nil
  end
  local fields = r[1][2]
  local m, a, names = nil, 1, {}
  for i = 1, #fields, 2 do
    if fields[i] == 'm' then
      m = fields[i + 1]
    elseif fields[i] == 'a' then
      a = tonumber(fields[i + 1]) or 1
    end
    names[#names + 1] = fields[i]
  end
  if m == nil then
    return '', a, 'the stream entry has no field m (its fields: ' .. table.concat(names, ', ') .. ')'
  end
  return m, a
end

local function bury(dead, id, m, attempts, reason, now)
  redis.call('XADD', dead, '*', 'm', m, 'reason', reason, 'attempts', attempts,
    'at_ms', now, 'source', id)
end

local function settle(stream, group, id)
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
end
