--[[
lease.lua: renew or release a lease, only by its holder (a lease is taken
with SET key owner NX PX ttl, which needs no script). Compare and act in one
atomic step: a lease that lapsed and was taken by another owner meanwhile is
never extended or deleted by the old one.

KEYS   1  the lease key
ARGV   1  the owner token
       2  the new time to live in ms; 0 releases the lease

Reply  1 when the owner held the lease (now renewed or released), else 0
]]

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('DEL', KEYS[1])
end
return 1
