; Structure of a model file: classes, functions, returns. Loaded by server/src/analysis/queries.ts;
; every capture name is read by server/src/analysis/model.ts.

; class BasicBlock(nn.Module): ...
(class_definition
  name: (identifier) @class.name) @class

; def forward(self, x): ...   /   def conv3x3(in_planes, out_planes, stride=1): ...
(function_definition
  name: (identifier) @function.name) @function

; return nn.Conv2d(in_planes, out_planes, kernel_size=3)
(return_statement) @return
