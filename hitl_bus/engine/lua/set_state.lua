-- ARGV 5 state JSON, 6 state id, 7 allowed current types (",A,B,"; "" any), 8 attempt ("" any)
local cur = current()
if not cur then return {0, ''} end
if cur['id'] == ARGV[6] then return {1, ''} end
if superseded(ARGV[8]) then return {6, cur['type']} end
if ARGV[7] ~= '' and not string.find(ARGV[7], ',' .. cur['type'] .. ',', 1, true) then
  return {2, cur['type']}
end
write_state(ARGV[5], {'pause_deadline', '0'})
return {1, cur['type']}
