"""TFLite / LiteRT target: litert-torch conversion, one signature per decoder shape, fp16/int8."""
