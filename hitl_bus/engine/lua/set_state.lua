-- ARGV 6 state JSON, 7 state id, 8 allowed current types (",A,B,"; "" any), 9 attempt ("" any)
local cur = current()
if not cur then return {0, ''} end
if cur['id'] == ARGV[7] then return {1, ''} end
if superseded(ARGV[9]) then return {6, cur['type']} end
if ARGV[8] ~= '' and not string.find(ARGV[8], ',' .. cur['type'] .. ',', 1, true) then
  return {2, cur['type']}
end
write_state(ARGV[6], {'pause_deadline', '0'})
return {1, cur['type']}
