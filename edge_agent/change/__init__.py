"""Model-free change detection: "something appeared in a zone and stayed".

Rules with `source: change` need no detector label. Per camera, `ChangeWatch` keeps a learned
reference of the view when clear and compares each analysed frame's *structure* (gradients of the
log image per colour channel, which a global gain, a white-balance shift or a soft shadow leave
unchanged) against it. Pixels that differ and keep the same new look for `min_dwell_s` form regions;
a region larger than the zone's minimum area opens an event of the rule's class, and the event
clears when the place matches the reference again. Detector tracks of people and vehicles are
masked out (a person standing still is not garbage), and a view that differs almost everywhere is
one camera fault, not a hundred problems.

Modules: `params` (YAML knobs), `structure` (the image comparison), `reference` (the learned clear
view), `persistence` (per-pixel "changed since"), `rule` (regions -> problem lifecycle), `shadow` (a hard
cast shadow standing still is a gain on the ground, not an object), `fault` (view shifted), `confirm`
(optional classifier hook), `watch` (one camera's orchestration).
"""
