--[[
release_limits.lua: give calls back to rate counters, in one atomic step
(sign-in limits count failed password checks only: a slot is taken before
the check and given back when the password was right, PROTOCOL §2).

KEYS   rate keys to give one call back to (the first ARGV[1] of them), then
       rate keys to clear
ARGV   1  how many keys to give one call back to
       2+ for each of them, its emission interval T in µs

GCRA, as in check_call.lua: a key stores its theoretical arrival time (TAT,
µs); giving a call back moves it T earlier, never below now (a full counter).
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local released = tonumber(ARGV[1])

for i = 1, released do
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0) - tonumber(ARGV[1 + i])
  if tat > now then
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
  else
    redis.call('DEL', KEYS[i])
  end
end
for i = released + 1, #KEYS do
  redis.call('DEL', KEYS[i])
end
return 0
