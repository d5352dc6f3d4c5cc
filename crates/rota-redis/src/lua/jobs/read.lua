-- Reads job records. Writes nothing.
-- KEYS: the fixed ones, then the job key of each id.
-- ARGV: base, ids...
-- Returns per job {its hash as field, value, ..., 1 if it runs}: a job
-- without a state is queued, or running when a consumer holds it (a claim
-- moves it from its lane into the consumer's held hash and leaves the
-- job's hash as it is, to spare a write per job).
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local fields = redis.call('HGETALL', KEYS[FIXED + i - 1])
  local running = 0
  if #fields > 0 then
    local s = nil
    for j = 1, #fields, 2 do
      if fields[j] == 's' then s = fields[j + 1] end
    end
    if not s and holder_of(id) then running = 1 end
  end
  out[#out + 1] = {fields, running}
end
return out
