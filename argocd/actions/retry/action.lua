-- Argo CD action "retry": writes the annotation `modelrollout retry` writes, never the spec
-- (Git stays the only author of the desired state). The operator applies each command id
-- once; the resourceVersion in the id makes it new for each state the action is taken in.
local kind = "retry"
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local id = "argocd-" .. kind .. "-" .. (obj.metadata.resourceVersion or "0")
obj.metadata.annotations["modelrollout.io/command"] =
  '{"id": "' .. id .. '", "kind": "' .. kind .. '", "user": "argocd"}'
return obj
