from torch import nn
import qdq_quant  # qdq


class BertSelfOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.add0_local_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.add0_residual_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.dense = qdq_quant.quant(nn.Linear(config.hidden_size, config.hidden_size))
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.LayerNorm(self.add0_local_quantizer(hidden_states) + self.add0_residual_quantizer(input_tensor))
        return hidden_states
