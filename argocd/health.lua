-- Argo CD health check for modelrollout.io/ModelRollout (Lua 5.1, as Argo CD runs it).
-- Healthy: the desired revision is stable. Progressing: a canary or an A/B/n phase is under way, or the operator
-- has not seen the latest spec yet. Suspended: paused for a human. Degraded: rolled back, or
-- refused by the operator (condition Refused: forbidden, invalid spec, no such router).
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelrollout operator to see this rollout"
  return hs
end
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Refused" and condition.status == "True" then
      hs.status = "Degraded"
      hs.message = "Refused by the operator: " .. (condition.message or condition.reason or "")
      return hs
    end
  end
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. generation
  return hs
end

local function version(ref)
  if ref ~= nil and ref.version ~= nil then
    return ref.version
  end
  return "?"
end

-- An A/B/n phase (no canary yet, arms in status): who runs at what share against the champion.
local function arms_summary()
  if status.canary ~= nil or status.arms == nil or #status.arms == 0 then
    return nil
  end
  local running, out, champion = {}, {}, "?"
  for _, arm in ipairs(status.arms) do
    if arm.role == "champion" then
      champion = arm.version
    elseif arm.state == "Running" then
      table.insert(running, arm.version .. " " .. (arm.share or 0) .. "%")
    else
      table.insert(out, arm.version .. " " .. string.lower(arm.state or "?"))
    end
  end
  local text = "A/B/n: " .. table.concat(running, ", ") .. " against champion " .. champion
  if #running == 0 then
    text = "A/B/n: no challenger running against champion " .. champion
  end
  if #out > 0 then
    text = text .. " (" .. table.concat(out, ", ") .. ")"
  end
  return text
end

local phase = status.phase
local abn = arms_summary()
if phase == "Promoted" then
  hs.status = "Healthy"
  hs.message = "Model version " .. version(status.stable) .. " is stable"
elseif phase == "Pending" then
  hs.status = "Progressing"
  hs.message = "Starting"
elseif phase == "Progressing" then
  hs.status = "Progressing"
  local weight = status.canaryWeight or 0
  local steps = ""
  if obj.spec ~= nil and obj.spec.strategy ~= nil and obj.spec.strategy.steps ~= nil then
    steps = " of " .. #obj.spec.strategy.steps
  end
  hs.message = "Canary " .. version(status.canary) .. " at " .. weight .. "% (step " ..
    (status.currentStep or 0) .. steps .. "), stable " .. version(status.stable)
  if abn ~= nil then
    hs.message = abn
  elseif status.canary == nil then
    hs.message = "Model version " .. version(status.stable) .. " is being made stable"
  end
elseif phase == "Baking" then
  hs.status = "Progressing"
  hs.message = "Baking " .. version(status.canary) .. " at " .. (status.canaryWeight or 0) ..
    "%, " .. version(status.stable) .. " kept warm"
elseif phase == "Paused" then
  hs.status = "Suspended"
  local reason = "Paused"
  if status.pause ~= nil and status.pause.reason ~= nil then
    reason = status.pause.reason
  end
  hs.message = reason .. ": canary " .. version(status.canary) .. " at " .. (status.canaryWeight or 0) .. "%"
  if abn ~= nil then
    hs.message = reason .. ": " .. abn
  end
  if status.pause ~= nil and status.pause.message ~= nil and status.pause.message ~= "" then
    hs.message = hs.message .. " (" .. status.pause.message .. ")"
  end
elseif phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = "Rolled back " .. version(status.canary) .. ": " .. (status.message or "no reason recorded")
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. phase
end
return hs
