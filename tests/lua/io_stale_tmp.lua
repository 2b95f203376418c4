-- A save killed mid-write leaves path.tmp.<pid>.<n>; the next successful save to the same
-- path removes those whose process is gone, and nothing else.
local mg = require("moongrad")
local T = mg.test()

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local ck = dir .. "/ck.safetensors"

local function exists(p) local f = io.open(p, "rb"); if f then f:close() end; return f ~= nil end
local function touch(p) local f = assert(io.open(p, "wb")); f:write("partial"); f:close(); return p end

-- a pid that has just exited (its process is gone), ours (from /proc/self), a live one (init)
local p = io.popen("sh -c 'echo $$'")
local dead = tonumber(p:read("l"))
p:close()
local sf = assert(io.open("/proc/self/stat"))
local self_pid = tonumber(sf:read("a"):match("^(%d+)"))
sf:close()
T:ok(dead and self_pid and dead ~= self_pid, "pids found (dead " .. tostring(dead) .. ", self " .. tostring(self_pid) .. ")")

local stale = {touch(("%s.tmp.%d.0"):format(ck, dead)), touch(("%s.tmp.%d.17"):format(ck, dead))}
local kept = {
  touch(("%s.tmp.%d.3"):format(ck, self_pid)),            -- this process: maybe a concurrent save
  touch(("%s.tmp.1.0"):format(ck)),                        -- a live process
  touch(("%s/other.safetensors.tmp.%d.0"):format(dir, dead)), -- another checkpoint's
  touch(("%s.tmp.%d.x"):format(ck, dead)),                 -- not our pattern
  touch(("%s.tmp.%d"):format(ck, dead)),
  touch(("%s.tmp.+%d.0"):format(ck, dead)),
  touch(("%s.tmpx.%d.0"):format(ck, dead)),
}

local ok, err = pcall(mg.save, "/nonexistent-dir/ck.safetensors", {w = mg.ones(2)})
T:ok(not ok, "a failed save elsewhere: " .. tostring(err))
T:ok(exists(stale[1]), "a failed save removes nothing")

mg.save(ck, {w = mg.ones(3), step = 1})
T:eq(mg.load(ck).step, 1, "the save succeeded")
T:ok(not exists(stale[1]) and not exists(stale[2]), "temporaries of a dead process are removed")
for i, k in ipairs(kept) do T:ok(exists(k), "kept: " .. k:sub(#dir + 2) .. " (" .. i .. ")") end

-- a relative path works the same
local cwd_stale = ("stale_tmp_test_%d.safetensors"):format(self_pid)
touch(("%s.tmp.%d.0"):format(cwd_stale, dead))
mg.save(cwd_stale, {w = mg.ones(1)})
T:ok(not exists(("%s.tmp.%d.0"):format(cwd_stale, dead)), "relative path: stale temporary removed")
os.remove(cwd_stale)

os.execute("rm -rf '" .. dir .. "'")
T:done()
