-- Argo CD resource actions for modelrollout.io/ModelRollout: which are offered, and when.
local actions = {}
local phase = ""
if obj.status ~= nil and obj.status.phase ~= nil then
  phase = obj.status.phase
end
local running = phase == "Progressing" or phase == "Paused" or phase == "Baking"
actions["promote"] = {["disabled"] = not running}
actions["promote-full"] = {["disabled"] = not running}
actions["abort"] = {["disabled"] = not running}
actions["pause"] = {["disabled"] = phase ~= "Progressing"}
actions["resume"] = {["disabled"] = phase ~= "Paused"}
actions["retry"] = {["disabled"] = phase ~= "RolledBack"}
return actions
