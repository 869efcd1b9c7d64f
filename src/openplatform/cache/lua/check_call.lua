--[[
check_call.lua: all of one signed call's shared-state checks in one atomic
step (PROTOCOL §3.3 steps 10, 11 and 13): replay nonce, then call_id, then
every rate limit. The first failing check is the outcome; a refused call
writes nothing. Time is the server's (TIME), so every process agrees.

A batch.run call (PROTOCOL §4 batch) also gives each of its items' rate
limits: once the call itself is accepted, item after item consumes all of
its limits or none (an item refused is that item's 4, not the batch's).

KEYS   generation key, [nonce key, when ARGV[1] > 0] [call_id key, when ARGV[2] ~= '']
       the call's rate keys, then every item's rate keys, item after item
ARGV   1  nonce TTL in ms (0: no nonce)
       2  call_id: decimal digits without leading zeros ('': no call_id)
       3  call_id TTL in ms
       4  how many rate keys the call has (R)
       then for each of those: limit L, emission interval T in µs
          (T = floor(window_us / L), so a burst of exactly L fits in L*T)
       then for each batch item: how many rate keys it has (n), then n pairs L, T

Rate limits are GCRA: each rate key stores the theoretical arrival time (TAT,
µs). A call fits when max(TAT, now) + T - now <= L*T.

Reply  {outcome, generation, limit, remaining, reset_s, retry_after_s, item waits...}
       outcome: 0 ok, 1 nonce replayed, 2 call_id not increasing, 3 rate limited.
       generation: the app's generation (bumped by INCR when its settings or
       credentials change). A missing one (a new app, or a Redis that lost its
       data) starts at the server's time in µs, so it differs from any number
       a process may remember from before.
       The status (limit = -1: the call had no rate keys) is the most
       constrained counter after the call: least remaining, then longest
       retry-after, then longest reset.
       Item waits (only when the call was accepted): per item, 0 when it was
       let through, else the seconds until it would be.
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local generation = redis.call('GET', KEYS[1])
if not generation then
  generation = string.format('%.0f', now)
  -- kept 30 days (INCR keeps the expiry): a deleted app's key goes away; an
  -- expired one starts anew, which only makes processes read the app afresh
  redis.call('SET', KEYS[1], generation, 'PX', 2592000000)
end

local nonce_ttl = tonumber(ARGV[1])
local call_id = ARGV[2]
local k = 2
local nonce_key, call_id_key
if nonce_ttl > 0 then
  nonce_key = KEYS[k]
  k = k + 1
end
if call_id ~= '' then
  call_id_key = KEYS[k]
  k = k + 1
end

-- a > b for decimal strings without leading zeros, of any length: compare
-- lengths, then 15-digit chunks (exact as doubles; no locale-aware strcoll).
local function greater(a, b)
  if #a ~= #b then
    return #a > #b
  end
  for i = 1, #a, 15 do
    local x = tonumber(string.sub(a, i, i + 14))
    local y = tonumber(string.sub(b, i, i + 14))
    if x ~= y then
      return x > y
    end
  end
  return false
end

local function current_tat(key)
  local tat = tonumber(redis.call('GET', key) or 0)
  if tat < now then
    return now
  end
  return tat
end

local function store(key, tat)
  -- %.0f: the default number-to-string conversion keeps only 14 digits
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
end

local outcome = 0
if nonce_key and redis.call('EXISTS', nonce_key) == 1 then
  outcome = 1
elseif call_id_key then
  local last = redis.call('GET', call_id_key)
  if last and not greater(call_id, last) then
    outcome = 2
  end
end

local rules = tonumber(ARGV[4])
local first = k
local last_key = first + rules - 1
local tats = {}
local room = true
for i = first, last_key do
  local j = 5 + 2 * (i - first)
  local interval = tonumber(ARGV[j + 1])
  local tat = current_tat(KEYS[i])
  tats[i] = tat
  if tat + interval - now > tonumber(ARGV[j]) * interval then
    room = false
  end
end
if outcome == 0 and not room then
  outcome = 3
end
local consume = outcome == 0

if consume then
  if nonce_key then
    redis.call('SET', nonce_key, '1', 'PX', nonce_ttl)
  end
  if call_id_key then
    redis.call('SET', call_id_key, call_id, 'PX', ARGV[3])
  end
end

local reply = {outcome, generation, -1, 0, 0, 0}
local best_limit, best_remaining, best_used, best_retry
for i = first, last_key do
  local j = 5 + 2 * (i - first)
  local limit = tonumber(ARGV[j])
  local interval = tonumber(ARGV[j + 1])
  local tau = limit * interval
  local tat = tats[i]
  local retry = 0
  if consume then
    tat = tat + interval
    store(KEYS[i], tat)
  else
    retry = tat + interval - now - tau
    if retry < 0 then
      retry = 0
    end
  end
  local used = tat - now
  local remaining = math.floor((tau - used) / interval)
  if remaining < 0 then
    remaining = 0
  end
  if best_limit == nil
    or remaining < best_remaining
    or (remaining == best_remaining and (retry > best_retry
      or (retry == best_retry and used > best_used))) then
    best_limit, best_remaining, best_used, best_retry = limit, remaining, used, retry
  end
end
if best_limit ~= nil then
  reply[3] = best_limit
  reply[4] = best_remaining
  reply[5] = math.ceil(best_used / 1000000)
  reply[6] = math.ceil(best_retry / 1000000)
end

if consume then
  -- batch items, in order: each takes one call from all of its counters, or none
  local key = last_key + 1
  local a = 5 + 2 * rules
  while a <= #ARGV do
    local count = tonumber(ARGV[a])
    local wait = 0
    local item_tats = {}
    for n = 0, count - 1 do
      local limit = tonumber(ARGV[a + 1 + 2 * n])
      local interval = tonumber(ARGV[a + 2 + 2 * n])
      local tat = current_tat(KEYS[key + n])
      item_tats[n] = tat
      local over = tat + interval - now - limit * interval
      if over > wait then
        wait = over
      end
    end
    if wait == 0 then
      for n = 0, count - 1 do
        store(KEYS[key + n], item_tats[n] + tonumber(ARGV[a + 2 + 2 * n]))
      end
    end
    reply[#reply + 1] = math.ceil(wait / 1000000)
    key = key + count
    a = a + 1 + 2 * count
  end
end

return reply
