; Operators and assignments in method bodies.

; attention_scores = query_layer @ key_layer.transpose(-1, -2)
(binary_operator
  operator: "@") @op.matmul

; hidden_states = self.LayerNorm(hidden_states + input_tensor)   /   x = x + self.attn(x)
(binary_operator
  operator: "+") @op.add

; out += identity
(augmented_assignment
  operator: "+=") @op.iadd

; self.conv1 = nn.Conv2d(...)   self.weight = nn.Parameter(...)   self.q_quantizer = qdq_quant.TensorQuantizer()
(assignment
  left: (attribute
    object: (identifier) @assign.obj
    attribute: (identifier) @assign.attr)
  right: (_) @assign.value) @assign.self
