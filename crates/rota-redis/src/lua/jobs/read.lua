-- Reads job records. Writes nothing.
-- KEYS: the fixed ones, then the job key of each id.
-- ARGV: base, ids...
-- Returns per job {its hash as field, value, ..., 1 if it runs}: a job is
-- running when its hash says queued but its lane no longer holds it (a
-- claim takes it from the lane into a consumer's held set and leaves the
-- hash as it is, to spare a write per job).
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local fields = redis.call('HGETALL', KEYS[FIXED + i - 1])
  local running = 0
  if #fields > 0 then
    local s, p, t
    for j = 1, #fields, 2 do
      local name = fields[j]
      if name == 's' then s = fields[j + 1]
      elseif name == 'p' then p = fields[j + 1]
      elseif name == 't' then t = fields[j + 1] end
    end
    if s == 'queued' and p and t and not redis.call('ZSCORE', lane_key(p, t), id) then
      running = 1
    end
  end
  out[#out + 1] = {fields, running}
end
return out
