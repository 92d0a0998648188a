"""The bundled demo line: real photographed surfaces as parts, with synthetic defects."""
