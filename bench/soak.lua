-- wrk script for bench/soak.sh: pass-through GETs with a guarded ChangeLockdownMode call
-- (lockdownNormal / lockdownDisabled, alternating) every SOAK_GUARDED_EVERY requests.
-- Each wrk thread logs in on its own and logs in again when the simulator answers
-- NotAuthenticated (its sessions are gone after the injected restart).
-- Responses are tallied by status; a non-2xx answer is marked "in fault window" when the file
-- SOAK_FAULT_MARKER exists at that moment (soak.sh creates it while the simulator is down).
local api = "/sdk/vim25/8.0.3.0"
local marker = os.getenv("SOAK_FAULT_MARKER") or ""
local every = tonumber(os.getenv("SOAK_GUARDED_EVERY") or "10")
local think_ms = tonumber(os.getenv("SOAK_DELAY_MS") or "0")
local login_body = '{"userName":"administrator@vsphere.local","password":"VMware1!"}'
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  token, n, lockdown = nil, 0, false
  counts, logins, guarded = {}, 0, 0
end

if think_ms > 0 then
  function delay()
    return think_ms
  end
end

function request()
  if token == nil then
    logins = logins + 1
    return wrk.format("POST", api .. "/SessionManager/SessionManager/Login",
      { ["Content-Type"] = "application/json" }, login_body)
  end
  n = n + 1
  local h = { ["vmware-api-session-id"] = token }
  if every > 0 and n % every == 0 then
    guarded = guarded + 1
    lockdown = not lockdown
    h["Content-Type"] = "application/json"
    local mode = lockdown and "lockdownNormal" or "lockdownDisabled"
    return wrk.format("POST", api .. "/HostAccessManager/ham-21/ChangeLockdownMode", h,
      '{"mode":"' .. mode .. '"}')
  end
  return wrk.format("GET", api .. "/HostSystem/host-21/name", h)
end

local function in_fault_window()
  if marker == "" then return false end
  local f = io.open(marker, "r")
  if f then f:close() return true end
  return false
end

function response(status, headers, body)
  for k, v in pairs(headers) do
    if string.lower(k) == "vmware-api-session-id" then token = v end
  end
  local key = tostring(status)
  if status >= 300 then
    if in_fault_window() then key = key .. " in-fault-window" else key = key .. " outside" end
    if body and string.find(body, "NotAuthenticated", 1, true) then
      key = key .. " NotAuthenticated"
      token = nil
    elseif body and string.find(body, '"_typeName"', 1, true) then
      key = key .. " vim-fault"
    end
  end
  counts[key] = (counts[key] or 0) + 1
end

function done(summary, latency, requests)
  local total, all = 0, {}
  local l, g = 0, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do all[k] = (all[k] or 0) + v end
    l = l + t:get("logins")
    g = g + t:get("guarded")
  end
  for k, v in pairs(all) do
    io.write(string.format("STATUS %s = %d\n", k, v))
    total = total + v
  end
  local e = summary.errors
  io.write(string.format("RESPONSES %d\nLOGINS %d\nGUARDED %d\n", total, l, g))
  io.write(string.format("SOCKET_ERRORS connect=%d read=%d write=%d timeout=%d\n",
    e.connect, e.read, e.write, e.timeout))
  io.write(string.format("LATENCY p50=%dus p99=%dus max=%dus\n",
    latency:percentile(50), latency:percentile(99), latency.max))
end
